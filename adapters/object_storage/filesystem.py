"""A registry's filesystem storage, seen from Ferry when the path is local."""

from __future__ import annotations

import os
from collections.abc import Iterator

from .common import Failure


class FilesystemBackend:
    """The path is on the Docker host; usage only when it is visible here too."""

    def __init__(self, store):
        self.root = store.root_directory or ""
        if not os.path.isabs(self.root):
            raise Failure("root_directory", "the path must be absolute")

    def probe(self) -> None:
        # Nothing more can be checked from here: the directory is created by
        # the registry container on the (possibly remote) Docker host.
        return None

    def walk(self) -> Iterator[tuple[str, int]]:
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    size = os.lstat(path).st_size
                except FileNotFoundError:  # removed while walking: uploads
                    continue
                yield os.path.relpath(path, self.root).replace(os.sep, "/"), size

    def iter_unfinished(self, prefix: str) -> Iterator[tuple[str, int]]:
        return iter(())  # an upload's partial data is a plain file: walk() sees it

    def size(self, key: str) -> int | None:
        try:
            return os.path.getsize(os.path.join(self.root, key))
        except OSError:
            return None
