"""Polling with a deadline: tests never sleep a fixed time.

`wait_for` calls a function until it returns something truthy. When the
deadline passes it fails with the message and the last value or exception,
so a failing test says what it saw rather than just "timed out".
"""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    fn: Callable[[], T],
    timeout: float = 30,
    interval: float = 0.2,
    message: str | Callable[[], str] = "",
) -> T:
    """Return fn()'s first truthy value; raise AssertionError at the deadline.

    message may be a callable, evaluated only on failure (e.g. a log tail).
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    last_error: BaseException | None = None
    while True:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - remembered for the report
            last_error, last_value = exc, None
        else:
            if value:
                return value
            last_error, last_value = None, value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    seen = (
        f"last exception: {last_error!r}"
        if last_error
        else f"last value: {last_value!r}"
    )
    if callable(message):
        message = message()
    raise AssertionError(
        f"{message or 'condition not met'} (after {timeout:g}s; {seen})"
    ) from last_error
