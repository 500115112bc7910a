"""Small readiness checks for scripts/setup.sh (standard library only).

probe.py free PORT            exit 0 if nothing listens on 127.0.0.1:PORT
probe.py tcp PORT SECONDS     wait until 127.0.0.1:PORT accepts
probe.py http URL SECONDS     wait until URL answers 200
"""

import socket
import sys
import time
import urllib.error
import urllib.request


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(check, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def main(argv: list[str]) -> int:
    kind, target = argv[0], argv[1]
    if kind == "free":
        return 1 if _accepts(int(target)) else 0
    deadline = time.monotonic() + float(argv[2])
    if kind == "tcp":
        ok = _wait(lambda: _accepts(int(target)), deadline)
    else:
        ok = _wait(lambda: _answers_200(target), deadline)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
