"""The HTTP side of the Jenkins stand-in (see jenkins_standin.py).

Routes, authentication, the crumb check and JSON shaped like Jenkins 2.4xx
answers; every handler runs under the stand-in's lock.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

if TYPE_CHECKING:
    from .jenkins_standin import JenkinsStandin, QueueItem, Run

VERSION = "2.462.3"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"


class Handler(BaseHTTPRequestHandler):
    standin: JenkinsStandin
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.standin.connections.add(self.connection)

    def finish(self) -> None:
        self.standin.connections.discard(self.connection)
        super().finish()

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------
    def _send(self, status: int, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self._entry["status"] = status  # before the client can see the answer
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype};charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Jenkins", VERSION)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, reason: str) -> None:
        page = (
            f"<html><head><title>Error {status} {reason}</title></head>"
            f"<body><h2>HTTP ERROR {status} {reason}</h2></body></html>"
        )
        self._send(status, page, "text/html")

    def _node(self, name: str) -> dict | None:
        """The node, or None after answering 404 as Jenkins does."""
        node = self.standin.nodes.get(name)
        if node is None:
            self._error(404, "Not Found")
        return node

    def _user(self) -> str | None:
        """The authenticated user, "" for anonymous, None for bad credentials."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return ""
        user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.standin.users.get(user) == token else None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        standin = self.standin
        body = self._body() if method == "POST" else b""
        self._entry = {
            "method": method,
            "path": path,
            "status": 0,
            "crumb": self.headers.get("Jenkins-Crumb", ""),
        }
        with standin.lock:
            standin.requests.append(self._entry)
            self._guarded(method, path, query, body)

    def _guarded(self, method: str, path: str, query: dict, body: bytes) -> None:
        standin = self.standin
        user = self._user()
        if user is None:
            self._error(401, "Invalid password/token for user")
            return
        if user == "":
            self._error(403, "Access Denied: anonymous is missing the Overall/Read")
            return
        if method == "POST" and standin.require_crumb:
            sent = self.headers.get("Jenkins-Crumb", "")
            if not standin.accept_crumbs or sent != standin.crumb:
                self._error(403, "No valid crumb was included in the request")
                return
        standin._advance()
        routes = GET_ROUTES if method == "GET" else POST_ROUTES
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                handler(self, user, query, body, *match.groups())
                return
        self._error(404, "Not Found")

    # -- GET ---------------------------------------------------------------------------
    def get_root(self, user, query, body) -> None:
        jobs = [
            {"_class": WORKFLOW_JOB, "name": n, "url": f"{self.standin.url}job/{n}/"}
            for n in self.standin.jobs
        ]
        self._send(
            200,
            {
                "_class": "hudson.model.Hudson",
                "mode": "NORMAL",
                "nodeDescription": "the Jenkins controller's built-in node",
                "nodeName": "",
                "numExecutors": 0,
                "jobs": jobs,
                "useCrumbs": self.standin.require_crumb,
                "useSecurity": True,
            },
        )

    def get_crumb(self, user, query, body) -> None:
        if not self.standin.require_crumb:
            self._error(404, "Not Found")
            return
        self._send(
            200,
            {
                "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": self.standin.crumb,
                "crumbRequestField": "Jenkins-Crumb",
            },
        )

    def get_me(self, user, query, body) -> None:
        self._send(200, {"_class": "hudson.model.User", "id": user, "fullName": user})

    def get_job(self, user, query, body, name) -> None:
        job = self.standin.jobs.get(name)
        if job is None:
            self._error(404, "Not Found")
            return
        self._send(
            200,
            {
                "_class": WORKFLOW_JOB,
                "name": name,
                "url": f"{self.standin.url}job/{name}/",
                "nextBuildNumber": job.next_number,
                "builds": [{"number": n} for n in sorted(job.runs, reverse=True)],
            },
        )

    def get_config(self, user, query, body, name) -> None:
        job = self.standin.jobs.get(name)
        if job is None:
            self._error(404, "Not Found")
            return
        self._send(200, job.config_xml, "application/xml")

    def _run(self, name: str, number: str) -> Run | None:
        job = self.standin.jobs.get(name)
        if job is None or (name, int(number)) in self.standin.vanished:
            return None
        return job.runs.get(int(number))

    def get_build(self, user, query, body, name, number) -> None:
        run = self._run(name, number)
        if run is None:
            self._error(404, "Not Found")
            return
        self._send(200, _build_json(self.standin.url, run))

    def get_progressive(self, user, query, body, name, number) -> None:
        run = self._run(name, number)
        if run is None:
            self._error(404, "Not Found")
            return
        start = int((query.get("start") or ["0"])[0])
        text = bytes(run.console[start:])
        headers = {"X-Text-Size": str(len(run.console))}
        if run.building:
            headers["X-More-Data"] = "true"
        self._send(200, text, "text/plain", headers)

    def get_console(self, user, query, body, name, number) -> None:
        run = self._run(name, number)
        if run is None:
            self._error(404, "Not Found")
            return
        self._send(200, bytes(run.console), "text/plain")

    def get_build_page(self, user, query, body, name, number) -> None:
        run = self._run(name, number)
        if run is None:
            self._error(404, "Not Found")
            return
        self._send(200, f"<html><body>{name} #{number}</body></html>", "text/html")

    def get_queue_item(self, user, query, body, queue_id) -> None:
        item = self.standin.queue.get(int(queue_id))
        if item is None:
            self._error(404, "Not Found")
            return
        self._send(200, _queue_json(self.standin.url, item))

    def get_node(self, user, query, body, name) -> None:
        node = self._node(name)
        if node is None:
            return
        self._send(
            200,
            {
                "_class": "hudson.slaves.SlaveComputer",
                "displayName": name,
                "numExecutors": node["numExecutors"],
                "offline": True,
                "assignedLabels": [
                    *({"name": label} for label in node["labelString"].split()),
                    {"name": name},
                ],
            },
        )

    def get_computers(self, user, query, body) -> None:
        names = ["(built-in)", *self.standin.nodes]
        self._send(
            200,
            {
                "_class": "hudson.model.ComputerSet",
                "computer": [{"displayName": n} for n in names],
            },
        )

    def get_node_config(self, user, query, body, name) -> None:
        node = self._node(name)
        if node is None:
            return
        xml = (
            "<?xml version='1.1' encoding='UTF-8'?>\n<slave><name>{name}</name>"
            "<description>Managed by Ferry</description><remoteFS>{fs}</remoteFS>"
            "<numExecutors>{executors}</numExecutors><mode>EXCLUSIVE</mode>"
            "<label>{label}</label></slave>"
        ).format(
            name=name, fs=node["remoteFS"], executors=node["numExecutors"],
            label=node["labelString"],
        )  # fmt: skip
        self._send(200, xml, "application/xml")

    def get_jnlp(self, user, query, body, name) -> None:
        node = self._node(name)
        if node is None:
            return
        xml = (
            '<jnlp codebase="{url}computer/{name}/" spec="1.0+">'
            "<application-desc><argument>{secret}</argument>"
            "<argument>{name}</argument><argument>-url</argument>"
            "<argument>{url}</argument></application-desc></jnlp>"
        ).format(url=self.standin.url, name=name, secret=node["secret"])
        self._send(200, xml, "application/x-java-jnlp-file")

    # -- POST --------------------------------------------------------------------------
    def post_create(self, user, query, body) -> None:
        name = (query.get("name") or [""])[0]
        if name in self.standin.jobs:
            self._error(400, f"A job already exists with the name '{name}'")
            return
        self.standin.add_job(name, body.decode())
        self._send(200, "")

    def post_config(self, user, query, body, name) -> None:
        job = self.standin.jobs.get(name)
        if job is None:
            self._error(404, "Not Found")
            return
        job.config_xml = body.decode()
        self._send(200, "")

    def post_build(self, user, query, body, name, _kind) -> None:
        standin = self.standin
        if name not in standin.jobs:
            self._error(404, "Not Found")
            return
        item = standin.enqueue(name, {k: v[0] for k, v in query.items()})
        location = f"{standin.url}queue/item/{item.id}/"
        self._send(201, "", "text/plain", {"Location": location})

    def post_stop(self, user, query, body, name, number) -> None:
        run = self._run(name, number)
        if run is None:
            self._error(404, "Not Found")
            return
        self.standin.stop_run(run, user)
        location = f"{self.standin.url}job/{name}/{number}/"
        self._send(302, "", "text/plain", {"Location": location})

    def post_cancel_queue(self, user, query, body) -> None:
        item = self.standin.queue.get(int((query.get("id") or ["0"])[0]))
        if item is not None and item.number is None:
            item.cancelled = True
        self._send(302, "", "text/plain", {"Location": self.standin.url})

    def post_node_config(self, user, query, body, name) -> None:
        node = self._node(name)
        if node is None:
            return
        root = ElementTree.fromstring(body)
        node["numExecutors"] = int(root.findtext("numExecutors") or 1)
        node["labelString"] = root.findtext("label") or ""
        node["remoteFS"] = root.findtext("remoteFS") or ""
        self._send(200, "")

    def post_delete_node(self, user, query, body, name) -> None:
        if self.standin.nodes.pop(name, None) is None:
            self._error(404, "Not Found")
            return
        self._send(302, "", "text/plain", {"Location": f"{self.standin.url}computer/"})

    def post_create_node(self, user, query, body) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        params = {**{k: v[0] for k, v in query.items()}, **form}
        name = params.get("name", "")
        if not name or name in self.standin.nodes:
            self._error(400, f"Agent called '{name}' already exists")
            return
        spec = json.loads(params.get("json") or "{}")
        self.standin.nodes[name] = {
            "numExecutors": int(spec.get("numExecutors") or 1),
            "labelString": spec.get("labelString") or "",
            "remoteFS": spec.get("remoteFS") or "",
            "launcher": (spec.get("launcher") or {}).get("stapler-class", ""),
            "secret": uuid.uuid4().hex * 2,
        }
        self._send(302, "", "text/plain", {"Location": f"{self.standin.url}computer/"})


def _build_json(url: str, run: Run) -> dict:
    params = [
        {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
        for k, v in run.params.items()
    ]
    return {
        "_class": WORKFLOW_RUN,
        "actions": [
            {"_class": "hudson.model.ParametersAction", "parameters": params},
            {
                "_class": "hudson.model.CauseAction",
                "causes": [{"_class": "hudson.model.Cause$UserIdCause"}],
            },
        ],
        "artifacts": [],
        "building": run.building,
        "description": None,
        "displayName": f"#{run.number}",
        "duration": run.duration_ms,
        "estimatedDuration": -1,
        "fullDisplayName": f"{run.job} #{run.number}",
        "id": str(run.number),
        "keepLog": False,
        "number": run.number,
        "queueId": run.queue_id,
        "result": run.result,
        "timestamp": run.timestamp_ms,
        "url": f"{url}job/{run.job}/{run.number}/",
        "inProgress": run.building,
    }


def _queue_json(url: str, item: QueueItem) -> dict:
    data = {
        "actions": [],
        "blocked": False,
        "buildable": item.number is None and not item.cancelled,
        "id": item.id,
        "inQueueSince": item.since_ms,
        "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
        "stuck": False,
        "task": {"_class": WORKFLOW_JOB, "name": item.job},
        "url": f"queue/item/{item.id}/",
        "why": None,
    }
    if item.cancelled:
        return {
            **data,
            "_class": "hudson.model.Queue$LeftItem",
            "cancelled": True,
            "executable": None,
        }
    if item.number is not None:
        return {
            **data,
            "_class": "hudson.model.Queue$LeftItem",
            "cancelled": False,
            "executable": {
                "_class": WORKFLOW_RUN,
                "number": item.number,
                "url": f"{url}job/{item.job}/{item.number}/",
            },
        }
    return {
        **data,
        "_class": "hudson.model.Queue$BuildableItem",
        "why": "Waiting for next available executor on ‘java’",
    }


JOB = r"/job/([^/]+)"
GET_ROUTES = [
    (r"/?(?:api/json)?", Handler.get_root),
    (r"/crumbIssuer/api/json", Handler.get_crumb),
    (r"/me/api/json", Handler.get_me),
    (JOB + r"/api/json", Handler.get_job),
    (JOB + r"/config\.xml", Handler.get_config),
    (JOB + r"/(\d+)/api/json", Handler.get_build),
    (JOB + r"/(\d+)/logText/progressiveText", Handler.get_progressive),
    (JOB + r"/(\d+)/consoleText", Handler.get_console),
    (JOB + r"/(\d+)/?", Handler.get_build_page),
    (r"/queue/item/(\d+)/api/json", Handler.get_queue_item),
    (r"/computer/?(?:api/json)?", Handler.get_computers),
    (r"/computer/([^/]+)/api/json", Handler.get_node),
    (r"/computer/([^/]+)/(?:jenkins|slave)-agent\.jnlp", Handler.get_jnlp),
    (r"/computer/([^/]+)/config\.xml", Handler.get_node_config),
]
POST_ROUTES = [
    (r"/createItem", Handler.post_create),
    (JOB + r"/config\.xml", Handler.post_config),
    (JOB + r"/(buildWithParameters|build)", Handler.post_build),
    (JOB + r"/(\d+)/stop", Handler.post_stop),
    (r"/queue/cancelItem", Handler.post_cancel_queue),
    (r"/computer/doCreateItem", Handler.post_create_node),
    (r"/computer/([^/]+)/config\.xml", Handler.post_node_config),
    (r"/computer/([^/]+)/doDelete", Handler.post_delete_node),
]
