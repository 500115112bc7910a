"""A stand-in for a Jenkins server (no Jenkins can be installed here).

It speaks, over real HTTP on 127.0.0.1, the subset of the Jenkins REST API
that python-jenkins and Ferry use, with JSON shaped like real Jenkins 2.4xx
answers: /api/json (X-Jenkins header), /crumbIssuer/api/json (and, when
crumbs are required, a 403 "No valid crumb" for POSTs without one), basic
auth with user + API token (401 when wrong, 403 when anonymous), job
config.xml, createItem, buildWithParameters (201 + Location of the queue
item), queue items (waiting, then `executable`), build JSON, progressive
console text (X-Text-Size / X-More-Data), stop, and agent nodes.

Builds "run" by a script: a queue delay, then console lines each after a
delay, optionally holding at a named gate until the test calls
`release(gate)`, then the result. Time advances lazily on each request, so
nothing runs in the background. Switches: `vanish(job, number)` (the build
404s from then on), `down()` / `up()` (the server stops / listens again on
the same port), `rotate_crumb()` (a restarted Jenkins), `accept_crumbs`.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

from controlplane.testing.ports import free_port

VERSION = "2.462.3"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"


@dataclass(frozen=True)
class Step:
    """One console line printed `delay` seconds after the previous step.

    With `gate`, the line waits (also) until the test releases that gate.
    """

    text: str = ""
    delay: float = 0.0
    gate: str = ""


@dataclass
class Script:
    queue_seconds: float = 0.2
    steps: list[Step] = field(default_factory=list)
    result: str = "SUCCESS"


def pipeline_script(
    stages: dict[str, list[str]],
    result: str = "SUCCESS",
    delay: float = 0.05,
    queue_seconds: float = 0.2,
    gates: dict[str, str] | None = None,
    node: str = "java",
) -> Script:
    """Console of a scripted pipeline, as Jenkins prints it, stage by stage.

    `gates` maps a stage name to a gate held before that stage starts.
    """
    gates = gates or {}
    steps = [
        Step("Started by user Ferry"),
        Step("[Pipeline] Start of Pipeline"),
        Step("[Pipeline] node"),
        Step(f"Running on {node} in /home/jenkins/agent/workspace/job", delay),
        Step("[Pipeline] {"),
    ]
    for name, lines in stages.items():
        steps.append(Step("[Pipeline] stage", delay, gates.get(name, "")))
        steps.append(Step(f"[Pipeline] {{ ({name})"))
        steps += [Step(line, delay) for line in lines]
        steps += [Step("[Pipeline] }"), Step("[Pipeline] // stage")]
    steps += [
        Step("[Pipeline] }"),
        Step("[Pipeline] // node"),
        Step("[Pipeline] End of Pipeline"),
    ]
    if result == "FAILURE":
        steps.append(Step("ERROR: script returned exit code 1"))
    return Script(queue_seconds=queue_seconds, steps=steps, result=result)


@dataclass
class Run:
    job: str
    number: int
    queue_id: int
    params: dict
    started: float  # monotonic
    timestamp_ms: int
    pending: list[Step]
    result_when_done: str
    last: float  # monotonic time the previous step was printed
    console: bytearray = field(default_factory=bytearray)
    building: bool = True
    result: str | None = None
    duration_ms: int = 0

    def print(self, text: str) -> None:
        self.console += (text + "\n").encode()


@dataclass
class QueueItem:
    id: int
    job: str
    params: dict
    since: float
    since_ms: int
    script: Script
    number: int | None = None
    cancelled: bool = False


@dataclass
class Job:
    name: str
    config_xml: str
    next_number: int = 1
    runs: dict[int, Run] = field(default_factory=dict)


class JenkinsStandin:
    """The server and its state; use as a context manager (stops on exit)."""

    def __init__(self, users: dict[str, str] | None = None, require_crumb=False):
        self.users = dict(users or {"ferry": "api-token-1"})
        self.require_crumb = require_crumb
        self.accept_crumbs = True
        self.crumb = uuid.uuid4().hex
        self.port = free_port()
        self.jobs: dict[str, Job] = {}
        self.queue: dict[int, QueueItem] = {}
        self.nodes: dict[str, dict] = {}
        self.scripts: dict[str, Script] = {}
        self.default_script = pipeline_script({"build": ["building"]})
        self.released: dict[str, float] = {}
        self.vanished: set[tuple[str, int]] = set()
        self.requests: list[dict] = []
        self.lock = threading.RLock()
        self.connections: set = set()  # open client sockets, cut by down()
        self._next_queue_id = 100
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def up(self) -> JenkinsStandin:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening (connections are refused) until up() is called."""
        if self._server is not None:
            for sock in list(self.connections):  # keep-alive ones too
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc_info) -> None:
        self.down()

    # -- switches for tests ------------------------------------------------------
    def release(self, gate: str) -> None:
        with self.lock:
            self.released[gate] = time.monotonic()

    def vanish(self, job: str, number: int) -> None:
        with self.lock:
            self.vanished.add((job, number))

    def rotate_crumb(self) -> None:
        with self.lock:
            self.crumb = uuid.uuid4().hex

    def run(self, job: str, number: int) -> Run:
        with self.lock:
            self._advance()
            return self.jobs[job].runs[number]

    def posts(self, path_part: str = "") -> list[dict]:
        return [
            r for r in self.requests if r["method"] == "POST" and path_part in r["path"]
        ]

    # -- the timeline ------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        for item in self.queue.values():
            due = item.since + item.script.queue_seconds
            if item.number is None and not item.cancelled and now >= due:
                self._start(item, now)
        for job in self.jobs.values():
            for run in job.runs.values():
                self._advance_run(run, now)

    def _start(self, item: QueueItem, now: float) -> None:
        job = self.jobs[item.job]
        number = job.next_number
        job.next_number += 1
        item.number = number
        job.runs[number] = Run(
            job=item.job,
            number=number,
            queue_id=item.id,
            params=item.params,
            started=now,
            timestamp_ms=int(time.time() * 1000),
            pending=list(item.script.steps),
            result_when_done=item.script.result,
            last=now,
        )

    def _advance_run(self, run: Run, now: float) -> None:
        while run.building and run.pending:
            step = run.pending[0]
            if step.gate and step.gate not in self.released:
                return
            due = max(run.last + step.delay, self.released.get(step.gate, 0.0))
            if now < due:
                return
            if step.text:
                run.print(step.text)
            run.pending.pop(0)
            run.last = due
        if run.building and not run.pending:
            self._finish(run, run.result_when_done, run.last)

    def _finish(self, run: Run, result: str, when: float) -> None:
        run.print(f"Finished: {result}")
        run.building = False
        run.result = result
        run.duration_ms = max(int((when - run.started) * 1000), 1)

    def stop_run(self, run: Run, user: str) -> None:
        if run.building:
            run.print(f"Aborted by {user}")
            self._finish(run, "ABORTED", time.monotonic())


class _Handler(BaseHTTPRequestHandler):
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
        node = self.standin.nodes.get(name)
        if node is None:
            self._error(404, "Not Found")
            return
        self._send(
            200,
            {
                "_class": "hudson.slaves.SlaveComputer",
                "displayName": name,
                "numExecutors": node["numExecutors"],
                "offline": True,
                "assignedLabels": [{"name": node["labelString"]}, {"name": name}],
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

    def get_jnlp(self, user, query, body, name) -> None:
        node = self.standin.nodes.get(name)
        if node is None:
            self._error(404, "Not Found")
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
        self.standin.jobs[name] = Job(name, body.decode())
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
        standin._next_queue_id += 1
        item = QueueItem(
            id=standin._next_queue_id,
            job=name,
            params={k: v[0] for k, v in query.items()},
            since=time.monotonic(),
            since_ms=int(time.time() * 1000),
            script=standin.scripts.get(name, standin.default_script),
        )
        standin.queue[item.id] = item
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
    (r"/?(?:api/json)?", _Handler.get_root),
    (r"/crumbIssuer/api/json", _Handler.get_crumb),
    (r"/me/api/json", _Handler.get_me),
    (JOB + r"/api/json", _Handler.get_job),
    (JOB + r"/config\.xml", _Handler.get_config),
    (JOB + r"/(\d+)/api/json", _Handler.get_build),
    (JOB + r"/(\d+)/logText/progressiveText", _Handler.get_progressive),
    (JOB + r"/(\d+)/consoleText", _Handler.get_console),
    (JOB + r"/(\d+)/?", _Handler.get_build_page),
    (r"/queue/item/(\d+)/api/json", _Handler.get_queue_item),
    (r"/computer/?(?:api/json)?", _Handler.get_computers),
    (r"/computer/([^/]+)/api/json", _Handler.get_node),
    (r"/computer/([^/]+)/(?:jenkins|slave)-agent\.jnlp", _Handler.get_jnlp),
]
POST_ROUTES = [
    (r"/createItem", _Handler.post_create),
    (JOB + r"/config\.xml", _Handler.post_config),
    (JOB + r"/(buildWithParameters|build)", _Handler.post_build),
    (JOB + r"/(\d+)/stop", _Handler.post_stop),
    (r"/queue/cancelItem", _Handler.post_cancel_queue),
    (r"/computer/doCreateItem", _Handler.post_create_node),
]
