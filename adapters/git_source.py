"""Fetching a project's source with git, where Ferry's worker runs.

`source_fetch(url, ref, dest)` checks out one ref (branch, tag or commit)
into an empty directory and returns the commit sha; `source_tar` packs a
tree (without .git) as a tar file for a Docker engine. git runs without a
terminal prompt and with a timeout, so a wrong URL or a missing credential
fails with git's own message instead of hanging.
"""

import os
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from django.utils.translation import gettext as _

from .errors import AdapterError, AdapterTimeout


class SourceError(AdapterError):
    """git could not fetch the repository or the ref."""


GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/true",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


# scheme://userinfo@ in any text: a URL's user part may hold a secret.
USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s]+)@")


def redact_urls(text: str) -> str:
    """`text` with URL passwords and http(s) users (tokens) shown as ***.

    Projects cannot be saved with credentials in their URL; this keeps one
    that got there anyway out of build logs and failure lines.
    """

    def hide(match: re.Match) -> str:
        scheme, info = match["scheme"], match["info"]
        user, colon, _password = info.partition(":")
        if colon:
            return f"{scheme}{user}:***@"
        if scheme.lower().startswith("ssh"):
            return match[0]  # ssh://git@host: a login name, not a secret
        return f"{scheme}***@"

    return USERINFO_RE.sub(hide, text)


def _git(
    args: list[str], cwd: Path, timeout: float, on_output: Callable[[str], None]
) -> str:
    """Run one git command; its output goes to on_output; stdout is returned."""
    on_output(redact_urls(f"$ git {' '.join(args)}\n"))
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **GIT_ENV},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AdapterTimeout(f"git {args[0]} took longer than {timeout:g} s") from exc
    except FileNotFoundError as exc:
        # No git executable on PATH (cwd is made by the caller and exists).
        raise SourceError(
            _("git is not installed where Ferry's worker runs; install git there.")
        ) from exc
    stderr = redact_urls(done.stderr)
    if stderr:
        on_output(stderr)
    if done.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        raise SourceError(lines[-1] if lines else f"git {args[0]} failed")
    return done.stdout


def source_fetch(
    url: str,
    ref: str,
    dest: Path,
    on_output: Callable[[str], None] = lambda text: None,
    timeout: float = 600,
) -> str:
    """Check out `ref` of `url` into `dest`; the full commit sha.

    A shallow fetch of the ref is tried first (fast for branches and tags);
    if the server refuses it (a bare commit sha, an old server), everything
    is fetched and the ref resolved locally.
    """
    dest.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q"], dest, timeout, on_output)
    _git(["remote", "add", "origin", url], dest, timeout, on_output)
    try:
        _git(["fetch", "-q", "--depth=1", "origin", ref], dest, timeout, on_output)
        target = "FETCH_HEAD"
    except SourceError:
        _git(["fetch", "-q", "--tags", "origin"], dest, timeout, on_output)
        target = _resolve(ref, dest, timeout, on_output)
    _git(["checkout", "-q", "--detach", target], dest, timeout, on_output)
    return _git(["rev-parse", "HEAD"], dest, timeout, on_output).strip()


def _resolve(ref: str, dest: Path, timeout: float, on_output) -> str:
    for candidate in (f"origin/{ref}", ref):
        try:
            return _git(
                ["rev-parse", "--verify", "-q", f"{candidate}^{{commit}}"],
                dest,
                timeout,
                on_output,
            ).strip()
        except SourceError:
            continue
    raise SourceError(f"ref {ref!r} not found in the repository")


def source_tar(tree: Path, out: Path, prefix: str = "") -> Path:
    """Pack `tree` (minus its .git) into the tar file `out`, under `prefix`/."""
    with tarfile.open(out, "w") as archive:
        if prefix:
            info = tarfile.TarInfo(prefix)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for entry in sorted(tree.iterdir()):
            if entry.name != ".git":
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                archive.add(entry, arcname=name)
    return out
