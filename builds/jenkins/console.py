"""Reading a pipeline's console as it streams: stages, commit, digest, failure.

`ConsoleWatch.feed(text)` takes chunks as they arrive (lines may be split
between chunks) and returns the events seen in complete lines: a stage
starting (`[Pipeline] { (name)`) or ending (`[Pipeline] // stage`), the
commit git checked out, the digest docker push printed. It keeps the last
lines so that, when the build fails, `failure_line()` names the line that
explains it.
"""

import re
from collections import deque
from dataclasses import dataclass

STAGE_START = re.compile(r"^\[Pipeline\] \{ \((?P<name>[^)]+)\)$")
STAGE_END = "[Pipeline] // stage"
COMMIT = re.compile(r"Checking out Revision (?P<sha>[0-9a-f]{40})")
DIGEST = re.compile(r"digest: (?P<digest>sha256:[0-9a-f]{64})")
EXIT_CODE = re.compile(r"script returned exit code (?P<code>\d+)")
# Lines that say what went wrong, most specific tools first; the pipeline's
# own "ERROR: script returned exit code N" is only the fallback.
ERROR_LINE = re.compile(
    r"(^ERROR\b|^\[ERROR\]|^npm ERR!|\berror\b|\bfatal:|FAILED|Exception\b"
    r"|returned a non-zero code|No such file|not found|denied)",
    re.IGNORECASE,
)
GENERIC_ERROR = re.compile(r"^ERROR: script returned exit code \d+$")
NOISE = re.compile(r"^(\[Pipeline\]|Finished: |Aborted by )")


@dataclass(frozen=True)
class Event:
    kind: str  # stage-start | stage-end | commit | digest
    value: str = ""


class ConsoleWatch:
    def __init__(self, keep_lines: int = 400):
        self.partial = ""
        self.tail: deque[str] = deque(maxlen=keep_lines)
        self.exit_code: int | None = None

    def feed(self, text: str) -> list[Event]:
        """Events from the complete lines in `text` (plus what was left over)."""
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        events = []
        for raw in lines:
            line = raw.rstrip("\r")
            self.tail.append(line)
            events += self._events(line)
        return events

    def finish(self) -> list[Event]:
        """Events of a last line that had no newline."""
        rest, self.partial = self.partial, ""
        return self.feed(rest + "\n") if rest else []

    def _events(self, line: str) -> list[Event]:
        if match := STAGE_START.match(line):
            return [Event("stage-start", match["name"])]
        if line == STAGE_END:
            return [Event("stage-end")]
        if match := COMMIT.search(line):
            return [Event("commit", match["sha"])]
        if match := DIGEST.search(line):
            return [Event("digest", match["digest"])]
        if match := EXIT_CODE.search(line):
            self.exit_code = int(match["code"])
        return []

    def failure_line(self) -> str:
        """The last line that explains a failure, else the last meaningful line."""
        meaningful = [ln.strip() for ln in self.tail if ln.strip()]
        meaningful = [ln for ln in meaningful if not NOISE.match(ln)]
        errors = [ln for ln in meaningful if ERROR_LINE.search(ln)]
        specific = [ln for ln in errors if not GENERIC_ERROR.match(ln)]
        for candidates in (specific, errors, meaningful):
            if candidates:
                return candidates[-1]
        return ""
