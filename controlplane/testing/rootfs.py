"""A tiny root filesystem recipe: files, generated files, dirs, symlinks.

The recipe hashes its own contents (every byte of every binary and config),
so an image built from it can be cached on disk and tagged by that hash.
"""

import hashlib
import io
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

_LDD_PATH = re.compile(r"(/\S+)\s+\(0x")


@dataclass
class _Entry:
    kind: str  # "file" | "dir" | "symlink"
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    target: str = ""


@dataclass
class RootFS:
    entries: dict[str, _Entry] = field(default_factory=dict)

    def add_dir(self, dest: str, mode: int = 0o755) -> None:
        self.entries[_norm(dest)] = _Entry("dir", mode)

    def add_bytes(self, dest: str, data: bytes | str, mode: int = 0o644) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.entries[_norm(dest)] = _Entry("file", mode, data=raw)

    def add_file(self, source: str, dest: str | None = None, mode: int | None = None):
        path = Path(source).resolve()  # copy the content, not the host's symlink
        if not path.is_file():
            raise FileNotFoundError(f"{source} is missing on this machine")
        file_mode = mode if mode is not None else path.stat().st_mode & 0o7777
        self.entries[_norm(dest or source)] = _Entry("file", file_mode, source=path)

    def add_symlink(self, dest: str, target: str) -> None:
        self.entries[_norm(dest)] = _Entry("symlink", 0o777, target=target)

    def add_binary(self, source: str, dest: str | None = None) -> None:
        """The binary plus every shared library ldd lists, at the listed paths."""
        self.add_file(source, dest)
        for lib in shared_libraries(source):
            self.add_file(lib)

    def digest(self) -> str:
        sha = hashlib.sha256()
        for name in sorted(self.entries):
            entry = self.entries[name]
            sha.update(
                f"{name}\0{entry.kind}\0{entry.mode:o}\0{entry.target}\0".encode()
            )
            sha.update(_content_hash(entry).encode())
        return sha.hexdigest()

    def write_tar(self, path: Path) -> None:
        """A reproducible tarball: root-owned, mtime 0, parents before children."""
        names = set(self.entries)
        for name in list(names):
            parent = Path(name).parent
            while str(parent) not in (".", "/"):
                if str(parent) not in self.entries:
                    self.add_dir(str(parent))
                parent = parent.parent
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(self.entries):
                _add_to_tar(tar, name, self.entries[name])


def shared_libraries(binary: str) -> list[str]:
    """Paths ldd lists (libraries and the loader); [] for a static binary."""
    result = subprocess.run(
        ["ldd", binary], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        return []  # "not a dynamic executable"
    return _LDD_PATH.findall(result.stdout)


def _norm(dest: str) -> str:
    return dest.lstrip("/").rstrip("/")


def _content_hash(entry: _Entry) -> str:
    if entry.data is not None:
        return hashlib.sha256(entry.data).hexdigest()
    if entry.source is not None:
        sha = hashlib.sha256()
        with open(entry.source, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        return sha.hexdigest()
    return ""


def _add_to_tar(tar: tarfile.TarFile, name: str, entry: _Entry) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = entry.mode, 0, 0, 0
    info.uname = info.gname = "root"
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
        tar.addfile(info)
    elif entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
    else:
        info.size = entry.source.stat().st_size
        with open(entry.source, "rb") as handle:
            tar.addfile(info, handle)
