"""What an executor writes while a build runs: log chunks, phase timings, fields.

`BuildProgress(build)` is the only writer of a running build's log and
timings. The log is appended in chunks (by size or age of the buffer) with a
single UPDATE ... SET log = log || chunk, so the page can show it live and a
crashed worker loses at most one chunk. Status is never touched here: see
`builds.runs.build_finish`.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from .models import Build, BuildStatus

RECORDABLE = {"commit", "image", "image_digest", "external_id", "cache"}
TRUNCATED_NOTE = "\n[log truncated: Ferry keeps the first %d bytes]\n"


def db_text(text: str) -> str:
    """`text` fit for a text column: NUL, which PostgreSQL refuses, as U+FFFD.

    Build output is whatever the tools print (binary files, some test
    runners); one NUL byte would otherwise fail the UPDATE and the build.
    """
    return text.replace("\x00", "\ufffd")


class BuildProgress:
    """Buffered, chunked progress recording for one running build."""

    def __init__(
        self,
        build: Build,
        flush_bytes: int = 8192,
        flush_seconds: float = 0.5,
        check_seconds: float = 0.5,
    ):
        self.build = build
        self.timings: dict = dict(build.timings or {})
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self.check_seconds = check_seconds
        self.max_bytes = int(getattr(settings, "FERRY_BUILD_LOG_MAX_BYTES", 5_000_000))
        self._written = len((build.log or "").encode())
        self._buffer: list[str] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self._last_check = 0.0
        self._stopped = False

    # -- log ---------------------------------------------------------------
    def log(self, text: str) -> None:
        """Append text to the log; written once the buffer is big or old."""
        if not text:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if (
            self._buffered >= self.flush_bytes
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write the buffered text now (one UPDATE)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        chunk = db_text("".join(self._buffer))
        self._buffer, self._buffered = [], 0
        chunk = self._within_limit(chunk)
        if chunk:
            Build.objects.filter(pk=self.build.pk).update(
                log=Concat(F("log"), Value(chunk), output_field=TextField())
            )

    def _within_limit(self, chunk: str) -> str:
        if self._written >= self.max_bytes:
            return ""
        data = chunk.encode()
        if self._written + len(data) > self.max_bytes:
            room = self.max_bytes - self._written
            chunk = (
                data[:room].decode(errors="ignore") + TRUNCATED_NOTE % self.max_bytes
            )
            data = data[:room]
        self._written += len(data)
        return chunk

    # -- phases and fields ---------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase into timings[name] (seconds), also when it raises."""
        self.flush()
        Build.objects.filter(pk=self.build.pk).update(phase=name)
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - started, 3)
            self.flush()
            Build.objects.filter(pk=self.build.pk).update(timings=self.timings)

    def record(self, **fields) -> None:
        """Store result fields (commit, image, image_digest, external_id, cache)."""
        unknown = set(fields) - RECORDABLE
        if unknown:
            raise ValueError(f"Not recordable on a build: {sorted(unknown)}")
        fields = {
            name: db_text(value) if isinstance(value, str) else value
            for name, value in fields.items()
        }
        Build.objects.filter(pk=self.build.pk).update(**fields)
        for name, value in fields.items():
            setattr(self.build, name, value)

    # -- stop requests ---------------------------------------------------------
    def cancelled(self, fresh: bool = False) -> bool:
        """True once the build left RUNNING (cancelled, or failed by the reaper).

        Checked against the database at most every `check_seconds`, unless
        `fresh` (e.g. to tell a failure caused by a cancel from a real one).
        """
        if self._stopped:
            return True
        now = time.monotonic()
        if not fresh and now - self._last_check < self.check_seconds:
            return False
        self._last_check = now
        still_running = Build.objects.filter(
            pk=self.build.pk, status=BuildStatus.RUNNING
        ).exists()
        self._stopped = not still_running
        return self._stopped

    def poll(self) -> bool:
        """For wait loops: write a buffer that waited too long; cancelled()?

        Call it while waiting on something silent (a `RUN sleep`, a Jenkins
        queue) so that the last lines reach the page without new output.
        """
        if self._buffer and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()
        return self.cancelled()

    def elapsed(self) -> float:
        """Seconds since the build started."""
        started = self.build.started_at or timezone.now()
        return (timezone.now() - started).total_seconds()
