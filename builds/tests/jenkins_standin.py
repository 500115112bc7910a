"""A stand-in for a Jenkins server (no Jenkins can be installed here).

It speaks, over real HTTP on 127.0.0.1, the subset of the Jenkins REST API
that python-jenkins and Ferry use, with JSON shaped like real Jenkins 2.4xx
answers: /api/json (X-Jenkins header), /crumbIssuer/api/json (and, when
crumbs are required, a 403 "No valid crumb" for POSTs without one), basic
auth with user + API token (401 when wrong, 403 when anonymous), job
config.xml, createItem, buildWithParameters (201 + Location of the queue
item), queue items (waiting, then `executable`), build JSON, progressive
console text (X-Text-Size / X-More-Data), stop, and agent nodes. The HTTP
side is in jenkins_standin_api.py; this module holds the state.

Builds "run" by a script: a queue delay, then console lines each after a
delay, optionally holding at a named gate until the test calls
`release(gate)`, then the result. Time advances lazily on each request, so
nothing runs in the background. Switches: `vanish(job, number)` (the build
404s from then on), `forget(queue_id)` (the queue item 404s, as after a
restart or once Jenkins drops an expired item), `down()` / `up()` (the
server stops, cutting open connections, and listens again on the same
port), `rotate_crumb()` (a restarted Jenkins), `accept_crumbs`.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Self

from controlplane.testing.ports import free_port


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
        from .jenkins_standin_api import Handler

        handler = type("BoundHandler", (Handler,), {"standin": self})
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

    def forget(self, queue_id: int) -> None:
        """Drop a queue item: it answers 404 and never gets a build."""
        with self.lock:
            del self.queue[queue_id]

    def rotate_crumb(self) -> None:
        with self.lock:
            self.crumb = uuid.uuid4().hex

    def add_job(self, name: str, config_xml: str) -> Job:
        self.jobs[name] = Job(name, config_xml)
        return self.jobs[name]

    def enqueue(self, job: str, params: dict) -> QueueItem:
        self._next_queue_id += 1
        item = QueueItem(
            id=self._next_queue_id,
            job=job,
            params=params,
            since=time.monotonic(),
            since_ms=int(time.time() * 1000),
            script=self.scripts.get(job, self.default_script),
        )
        self.queue[item.id] = item
        return item

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
