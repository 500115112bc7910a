"""Jenkins through python-jenkins: the few verbs Ferry's Jenkins executor needs.

`JenkinsClient(conn)` builds its python-jenkins handle lazily with an
explicit timeout (settings.FERRY_HTTP_TIMEOUT unless given) and never lets
the environment's proxies or CA bundle redirect its traffic. Every failure
comes out as one of our errors with a reason people can act on:

* `JenkinsUnreachable`: connection refused, DNS, no answer within the timeout;
* `JenkinsAuthFailed`: 401 (wrong user or API token) or 403 (no permission);
* `JenkinsCrumbRejected`: 403 "No valid crumb" even after fetching a fresh one;
* `JenkinsBuildVanished`: a build we started answers 404;
* `JenkinsError`: anything else Jenkins refused.

CSRF: python-jenkins asks /crumbIssuer/api/json once and sends the crumb on
every request (no crumb when the issuer is absent). A crumb goes stale when
Jenkins restarts, so a 403 about the crumb is retried once with a fresh one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlencode
from xml.etree import ElementTree

import jenkins
import requests
from django.conf import settings

from .errors import JenkinsError

T = TypeVar("T")
CONFIG_HASH_RE = re.compile(r"ferry-config-hash:\s*([0-9a-f]{16,64})")
MAX_BODY = 200


class JenkinsUnreachable(JenkinsError):
    """Jenkins did not answer (refused, unresolvable, timed out)."""


class JenkinsAuthFailed(JenkinsError):
    """Jenkins refused the user or API token (401) or the permission (403)."""


class JenkinsCrumbRejected(JenkinsError):
    """Jenkins refused the CSRF crumb (403 "No valid crumb")."""


class JenkinsBuildVanished(JenkinsError):
    """A build Ferry started is gone (404): deleted, or Jenkins lost it."""


class _NotFound(Exception):
    """Internal: Jenkins answered 404 (callers turn it into None or an error)."""


@dataclass(frozen=True)
class JenkinsConnection:
    url: str
    username: str = ""
    token: str = ""  # API token: a secret

    def __repr__(self) -> str:  # never print the token
        return f"JenkinsConnection({self.url!r}, user={self.username!r})"


@dataclass(frozen=True)
class QueueState:
    state: str  # waiting | started | cancelled
    build_number: int | None = None
    why: str = ""  # Jenkins' reason for waiting, e.g. "Waiting for next executor"


@dataclass(frozen=True)
class BuildInfo:
    result: str | None  # SUCCESS | FAILURE | ABORTED | UNSTABLE | NOT_BUILT
    building: bool
    duration_ms: int  # 0 while building
    timestamp: int  # ms since the epoch: when the build started


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen, todo = set(), [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo = [t for t in todo if t is None or isinstance(t, BaseException)]
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]


def _http_answer(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status and body behind a python-jenkins or requests error."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return response.status_code, response.text or ""
    return None, ""


def _brief(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)  # Jenkins error pages are HTML
    text = " ".join(text.split())
    return text if len(text) <= MAX_BODY else text[: MAX_BODY - 1] + "…"


def complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of `data` not ending inside a character."""
    for cut in range(min(3, len(data)) + 1):
        try:
            data[: len(data) - cut].decode()
            return len(data) - cut
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 4:
                return len(data)  # broken in the middle: not a split character
    return len(data)


class JenkinsClient:
    """One Jenkins server, as one user; see the module docstring."""

    def __init__(self, conn: JenkinsConnection, timeout: float | None = None):
        self.conn = conn
        self.timeout = float(timeout or settings.FERRY_HTTP_TIMEOUT)
        self._handle: jenkins.Jenkins | None = None

    @property
    def server(self) -> jenkins.Jenkins:
        if self._handle is None:
            handle = jenkins.Jenkins(
                self.conn.url,
                username=self.conn.username or None,
                password=self.conn.token or None,
                timeout=self.timeout,
            )
            # Loopback and internal URLs must not go through HTTP(S)_PROXY.
            handle._session.trust_env = False
            self._handle = handle
        return self._handle

    # -- error translation ---------------------------------------------------
    def _translate(self, exc: Exception, what: str) -> Exception:
        url, user = self.conn.url, self.conn.username or "anonymous"
        for item in _chain(exc):
            if isinstance(item, (requests.Timeout, jenkins.TimeoutException)):
                return JenkinsUnreachable(
                    f"Jenkins at {url} did not answer within {self.timeout:g} s"
                )
            if isinstance(item, requests.ConnectionError):
                return JenkinsUnreachable(
                    f"Cannot connect to Jenkins at {url}: {_connection_reason(item)}"
                )
        status, body = _http_answer(exc)
        if status == 404:
            return _NotFound(what)
        if status == 401:
            return JenkinsAuthFailed(
                f"Jenkins rejected the credentials for user {user} (HTTP 401): "
                "check the user name and API token"
            )
        if status == 403 and "crumb" in body.lower():
            return JenkinsCrumbRejected(
                f"Jenkins at {url} refused the CSRF crumb (HTTP 403 "
                "'No valid crumb was included in the request') even after "
                "fetching a fresh one: is a proxy dropping the Jenkins-Crumb header?"
            )
        if status == 403:
            return JenkinsAuthFailed(
                f"Jenkins user {user} may not {what} (HTTP 403): {_brief(body)}"
            )
        detail = f"HTTP {status}: {_brief(body)}" if status else _brief(str(exc))
        return JenkinsError(f"Jenkins could not {what}: {detail}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run fn, translating errors; a stale crumb is refreshed once."""
        for attempt in (1, 2):
            try:
                return fn()
            except Exception as exc:
                error = self._translate(exc, what)
                if isinstance(error, JenkinsCrumbRejected) and attempt == 1:
                    self.server.crumb = None  # ask the issuer again
                    continue
                raise error from exc
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        request = requests.Request(method, self.server.server + path, **kwargs)
        return self.server.jenkins_request(request)

    def _get_json(self, what: str, path: str) -> dict | None:
        """GET <path>/api/json; None on 404."""
        try:
            response = self._call(what, lambda: self._request("GET", path))
        except _NotFound:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise JenkinsError(f"Jenkins could not {what}: not JSON") from exc

    # -- verbs -----------------------------------------------------------------
    def version(self) -> str:
        """Jenkins' version (X-Jenkins header of /api/json); checks the login."""
        response = self._call("answer", lambda: self._request("GET", "api/json"))
        return response.headers.get("X-Jenkins", "")

    def ensure_job(self, name: str, config_xml: str) -> str:
        """Create or update the job; "created" | "updated" | "unchanged".

        The config's description carries `ferry-config-hash: <hex>`; a job
        whose stored config has the same hash is left alone.
        """
        current = self.job_config(name)
        if current is None:
            self._call(
                f"create job {name}", lambda: self.server.create_job(name, config_xml)
            )
            return "created"
        wanted = CONFIG_HASH_RE.search(config_xml)
        found = CONFIG_HASH_RE.search(current)
        if wanted and found and wanted.group(1) == found.group(1):
            return "unchanged"
        self._call(
            f"update job {name}", lambda: self.server.reconfig_job(name, config_xml)
        )
        return "updated"

    def job_config(self, name: str) -> str | None:
        try:
            return self._call(
                f"read job {name}", lambda: self.server.get_job_config(name)
            )
        except _NotFound:
            return None

    def trigger(self, name: str, params: dict[str, str]) -> int:
        """Queue a build with parameters; the queue item id."""
        try:
            return self._call(
                f"start job {name}", lambda: self.server.build_job(name, params)
            )
        except _NotFound:
            raise JenkinsError(f"Jenkins has no job {name} to start") from None

    def queue_item(self, queue_id: int) -> QueueState | None:
        """Where a queued build is; None once Jenkins forgot the item (404)."""
        data = self._get_json(
            f"read queue item {queue_id}", f"queue/item/{int(queue_id)}/api/json"
        )
        if data is None:
            return None
        executable = data.get("executable") or {}
        if executable.get("number") is not None:
            return QueueState("started", int(executable["number"]))
        if data.get("cancelled"):
            return QueueState("cancelled", why=data.get("why") or "")
        return QueueState("waiting", why=data.get("why") or "")

    def cancel_queue(self, queue_id: int) -> None:
        """Take a waiting build out of the queue; gone already is fine."""
        self._call("cancel a queued build", lambda: self.server.cancel_queue(queue_id))

    def build_info(self, name: str, number: int) -> BuildInfo:
        """The build's state; raises JenkinsBuildVanished on 404."""
        data = self._get_json(
            f"read build {name} #{number}", f"{_job_path(name)}{int(number)}/api/json"
        )
        if data is None:
            raise JenkinsBuildVanished(_vanished(self.conn.url, name, number))
        return BuildInfo(
            result=data.get("result"),
            building=bool(data.get("building")),
            duration_ms=int(data.get("duration") or 0),
            timestamp=int(data.get("timestamp") or 0),
        )

    def console_since(
        self, name: str, number: int, offset: int
    ) -> tuple[str, int, bool]:
        """Console text from byte `offset`: (text, next offset, more coming).

        Uses /logText/progressiveText (X-Text-Size, X-More-Data). A character
        split at the end of a chunk is left for the next call.
        """
        path = f"{_job_path(name)}{int(number)}/logText/progressiveText"
        query = urlencode({"start": int(offset)})
        try:
            response = self._call(
                f"read the console of {name} #{number}",
                lambda: self._request("GET", f"{path}?{query}"),
            )
        except _NotFound:
            raise JenkinsBuildVanished(_vanished(self.conn.url, name, number)) from None
        data = response.content
        size = int(response.headers.get("X-Text-Size") or offset + len(data))
        more = response.headers.get("X-More-Data", "").lower() == "true"
        keep = complete_utf8(data)
        if keep < len(data):
            size = offset + keep
        return data[:keep].decode(errors="replace"), size, more

    def stop(self, name: str, number: int) -> None:
        """Abort a running build; a build that is gone already is fine."""
        try:
            self._call(
                f"stop {name} #{number}", lambda: self.server.stop_build(name, number)
            )
        except _NotFound:
            return

    def ensure_node(
        self, name: str, executors: int, labels: str, remote_fs: str
    ) -> str:
        """A permanent inbound (WebSocket/JNLP) agent node with these executors
        and labels; "created" | "updated" | "exists"."""
        path = f"computer/{quote(name, safe='')}/api/json"
        node = self._get_json(f"read node {name}", path)
        if node is not None:
            have = {label["name"] for label in node.get("assignedLabels", [])}
            same_labels = have - {name} == set(labels.split())
            if node.get("numExecutors") == executors and same_labels:
                return "exists"
            self._node_reconfigure(name, executors, labels)
            return "updated"
        self._call(
            f"create node {name}",
            lambda: self.server.create_node(
                name,
                numExecutors=executors,
                nodeDescription="Managed by Ferry",
                remoteFS=remote_fs,
                labels=labels,
                exclusive=True,
                launcher=jenkins.LAUNCHER_JNLP,
                launcher_params={},
            ),
        )
        return "created"

    def _node_reconfigure(self, name: str, executors: int, labels: str) -> None:
        """Set executors and labels in the node's config.xml, keep the rest."""
        xml = self._call(
            f"read the config of node {name}",
            lambda: self.server.get_node_config(name),
        )
        try:
            root = ElementTree.fromstring(xml)
        except ElementTree.ParseError as exc:
            raise JenkinsError(f"Jenkins sent an unreadable config for {name}") from exc
        for tag, value in (("numExecutors", str(executors)), ("label", labels)):
            element = root.find(tag)
            if element is None:
                element = ElementTree.SubElement(root, tag)
            element.text = value
        config = ElementTree.tostring(root, encoding="unicode")
        self._call(
            f"update node {name}", lambda: self.server.reconfig_node(name, config)
        )

    def nodes(self) -> list[str]:
        """The names of every node (the built-in one included)."""
        found = self._get_json("list nodes", "computer/api/json") or {}
        return [node["displayName"] for node in found.get("computer", [])]

    def delete_node(self, name: str) -> None:
        """Remove a node; one that is gone already is fine."""
        path = f"computer/{quote(name, safe='')}/doDelete"
        try:
            self._call(f"delete node {name}", lambda: self._request("POST", path))
        except _NotFound:
            return

    def agent_secret(self, name: str) -> str:
        """The secret an inbound agent named `name` connects with."""
        path = f"computer/{quote(name, safe='')}/jenkins-agent.jnlp"
        try:
            response = self._call(
                f"read the secret of node {name}", lambda: self._request("GET", path)
            )
        except _NotFound:
            raise JenkinsError(f"Jenkins has no node {name}") from None
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError as exc:
            raise JenkinsError(
                f"Jenkins sent an unreadable agent file for {name}"
            ) from exc
        arguments = [a.text or "" for a in root.iter("argument")]
        if not arguments or not arguments[0]:
            raise JenkinsError(f"Jenkins sent no secret for node {name}")
        return arguments[0]


def _job_path(name: str) -> str:
    return "".join(f"job/{quote(part, safe='')}/" for part in name.split("/"))


def _vanished(url: str, name: str, number: int) -> str:
    return (
        f"Jenkins build {name} #{number} vanished (HTTP 404 at {url}): it was "
        "deleted, or Jenkins lost it (restored from backup, job recreated)"
    )


def _connection_reason(exc: BaseException) -> str:
    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if "Name or service not known" in str(item) or "nodename nor" in str(item):
            return "cannot resolve the host name"
    return _brief(str(exc)) or type(exc).__name__
