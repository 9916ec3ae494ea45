"""Path confinement for the file, git and command tools.

Every path is parsed without decoding anything (``%2e%2e`` is a literal file
name), then opened component by component from the workspace root with
``os.open(..., dir_fd=parent, O_NOFOLLOW)``. No path string is ever resolved by
the kernel in one go, so a symlink placed (or swapped in) anywhere along the
way is refused at the moment of opening, not at the moment of a check. Only
regular files and directories are read or written: devices, FIFOs and sockets
are refused before they are opened.

Writes go to a new file that is then renamed over the name, so a hard link in a
workspace to a file elsewhere (which no tool can create) is replaced, never written
through. Reading such a link reads the shared file: a hard link carries no
information about its other names, and only someone who could read that file could
have made it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_PATH_CHARS = 4096
MAX_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must never block the server waiting for a writer.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SandboxError(Exception):
    """A path the sandbox refuses; ``status`` and ``code`` map to the HTTP error."""

    def __init__(self, message: str, *, code: str = "invalid_path", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def _escape(message: str) -> SandboxError:
    return SandboxError(message, code="path_outside_workspace", status=403)


@dataclass(frozen=True)
class Location:
    """A path inside one workspace root, as a root and a tuple of plain names."""

    root: Path
    parts: tuple[str, ...]

    @property
    def display(self) -> str:
        return "/".join(self.parts) or "."

    @property
    def absolute(self) -> Path:
        return self.root.joinpath(*self.parts)


def _check_component(part: str) -> None:
    if part == "..":
        raise _escape("'..' is not allowed in paths: use a path inside the workspace")
    # Compatibility characters (fullwidth dots and slashes, the two-dot leader, the
    # division slash) are harmless literally, but become '..' or '/' for any program
    # that normalises them later. Refuse them instead of guessing who normalises.
    folded = unicodedata.normalize("NFKC", part)
    if folded != part and ("/" in folded or "\\" in folded or folded in (".", "..")):
        raise _escape(f"path component {part!r} normalises to {folded!r}; use plain characters")


def parse_parts(path: str) -> tuple[str, ...]:
    """The plain components of a relative path; raises SandboxError for anything hostile."""
    if not isinstance(path, str):
        raise SandboxError("path must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise SandboxError(f"path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise SandboxError("path contains a NUL byte")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise SandboxError("path contains control characters")
    if "\\" in path:
        raise SandboxError("use '/' as the path separator, not '\\'")
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    for part in parts:
        _check_component(part)
    if len(parts) > MAX_DEPTH:
        raise SandboxError(f"path is deeper than {MAX_DEPTH} directories")
    return parts


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special"


class Workspace:
    """One or more root directories that tools are confined to."""

    def __init__(self, roots: list[Path], *, create: bool = True) -> None:
        if not roots:
            raise ValueError("at least one workspace root is required")
        resolved: list[Path] = []
        for root in roots:
            if create:
                root.mkdir(parents=True, exist_ok=True)
            real = Path(os.path.realpath(root))
            if not real.is_dir():
                raise ValueError(f"workspace root {root} is not a directory")
            resolved.append(real)
        self.roots = resolved

    # --- parsing ------------------------------------------------------------

    def locate(self, path: str | None) -> Location:
        """Where ``path`` points: relative paths go to the first root."""
        if path is None or path == "":
            return Location(self.roots[0], ())
        if isinstance(path, str) and path.startswith("/"):
            parse_parts(path)  # reject NUL, '..' and friends before comparing prefixes
            for root in self.roots:
                prefix = str(root)
                if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                    return Location(root, parse_parts(path[len(prefix) :]))
            raise _escape(
                f"{path!r} is outside the workspace roots; use a path relative to"
                f" {self.roots[0]} or an absolute path under one of: "
                + ", ".join(str(r) for r in self.roots)
            )
        return Location(self.roots[0], parse_parts(path))

    # --- walking ------------------------------------------------------------

    def _open_child_dir(self, parent_fd: int, name: str, shown: str, create: bool) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise SandboxError(
                    f"directory {shown!r} does not exist", code="path_not_found"
                ) from None
            # Created concurrently is fine: the open below checks what it is.
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            return self._open_child_dir(parent_fd, name, shown, create=False)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                kind = self._lkind(parent_fd, name)
                if kind == "symlink":
                    raise _escape(f"{shown!r} is a symlink; symlinks are not followed") from None
                raise SandboxError(f"{shown!r} is a {kind}, not a directory") from None
            raise SandboxError(f"cannot open {shown!r}: {exc.strerror}") from None

    @staticmethod
    def _lkind(dir_fd: int, name: str) -> str | None:
        try:
            return _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return None

    @contextmanager
    def open_dir(self, location: Location, *, create: bool = False) -> Iterator[int]:
        """A file descriptor of the directory at ``location``, closed on exit."""
        fd = os.open(location.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for index, part in enumerate(location.parts):
                shown = "/".join(location.parts[: index + 1])
                child = self._open_child_dir(fd, part, shown, create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def open_parent(self, location: Location, *, create: bool = False) -> Iterator[int]:
        if not location.parts:
            raise SandboxError("a file path is required, not the workspace root")
        parent = Location(location.root, location.parts[:-1])
        with self.open_dir(parent, create=create) as fd:
            yield fd

    # --- files --------------------------------------------------------------

    def read_file(self, location: Location, max_bytes: int) -> tuple[bytes, int]:
        """Up to ``max_bytes`` of a regular file, and the file's full size."""
        name = location.parts[-1] if location.parts else ""
        with self.open_parent(location) as dir_fd:
            kind = self._lkind(dir_fd, name)
            if kind is None:
                raise SandboxError(
                    f"file {location.display!r} does not exist", code="path_not_found"
                )
            self._require_file(kind, location)
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise self._open_error(exc, location) from None
        try:
            info = os.fstat(fd)
            # Checked again on the open descriptor: the name may have been swapped.
            self._require_file(_kind(info.st_mode), location)
            chunks: list[bytes] = []
            remaining = max_bytes
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 65536))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks), info.st_size
        finally:
            os.close(fd)

    def write_file(self, location: Location, data: bytes, *, create_dirs: bool) -> bool:
        """Replace (or create) a regular file atomically; True when it was created."""
        name = location.parts[-1] if location.parts else ""
        with self.open_parent(location, create=create_dirs) as dir_fd:
            kind = self._lkind(dir_fd, name)
            if kind is not None:
                self._require_file(kind, location)
            temp = f".{name[:200]}.{uuid.uuid4().hex}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temp, flags, 0o644, dir_fd=dir_fd)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except BaseException:
                os.close(fd)
                os.unlink(temp, dir_fd=dir_fd)
                raise
            os.close(fd)
            # rename() replaces a symlink swapped in meanwhile instead of following it.
            try:
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                os.unlink(temp, dir_fd=dir_fd)
                raise SandboxError(f"cannot write {location.display!r}: {exc.strerror}") from None
        return kind is None

    def _require_file(self, kind: str | None, location: Location) -> None:
        if kind == "symlink":
            raise _escape(f"{location.display!r} is a symlink; symlinks are not followed")
        if kind == "directory":
            raise SandboxError(f"{location.display!r} is a directory, not a file")
        if kind != "file":
            raise SandboxError(
                f"{location.display!r} is a device, FIFO or socket; only regular files are allowed",
                code="not_a_regular_file",
            )

    def _open_error(self, exc: OSError, location: Location) -> SandboxError:
        if exc.errno == errno.ELOOP:
            return _escape(f"{location.display!r} is a symlink; symlinks are not followed")
        if exc.errno == errno.ENOENT:
            return SandboxError(f"file {location.display!r} does not exist", code="path_not_found")
        return SandboxError(f"cannot open {location.display!r}: {exc.strerror}")

    # --- listing and walking ------------------------------------------------

    def list_dir(self, location: Location) -> list[dict[str, object]]:
        with self.open_dir(location) as fd, os.scandir(fd) as entries:
            items: list[dict[str, object]] = []
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                kind = _kind(info.st_mode)
                item: dict[str, object] = {"name": entry.name, "type": kind}
                if kind == "file":
                    item["size"] = info.st_size
                items.append(item)
        return sorted(items, key=lambda item: str(item["name"]))

    def walk_files(
        self, location: Location, *, skip_dirs: frozenset[str] = frozenset({".git"})
    ) -> Iterator[tuple[str, int, int]]:
        """Yield (relative path, parent dir fd, size) for each regular file below ``location``.

        Symlinks and special files are skipped, never followed. The fd is only
        valid during the iteration step.
        """
        with self.open_dir(location) as fd:
            yield from self._walk(fd, location.parts, 0, skip_dirs)

    def _walk(
        self, fd: int, prefix: tuple[str, ...], depth: int, skip_dirs: frozenset[str]
    ) -> Iterator[tuple[str, int, int]]:
        with os.scandir(fd) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode):
                yield "/".join((*prefix, entry.name)), fd, info.st_size
            elif stat.S_ISDIR(info.st_mode) and entry.name not in skip_dirs and depth < MAX_DEPTH:
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # replaced by a symlink or removed meanwhile: skip it
                try:
                    yield from self._walk(child, (*prefix, entry.name), depth + 1, skip_dirs)
                finally:
                    os.close(child)

    def read_in_dir(self, dir_fd: int, name: str, max_bytes: int) -> bytes | None:
        """A regular file's content (up to ``max_bytes``) by name in ``dir_fd``, else None."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, max_bytes)
        finally:
            os.close(fd)

    def root_of(self, location: Location) -> Path:
        return location.root
