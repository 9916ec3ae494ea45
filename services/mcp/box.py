"""The box every ``run_command`` child runs in: bubblewrap namespaces, rlimits, a pids cgroup.

What the box gives (docs/security.md "Commands run in a box" has the full list and what
it does not give):

- its own PID namespace: when the call ends (exit, timeout, cancellation) the outer
  bwrap is killed, its child (pid 1 inside) gets SIGKILL through ``--die-with-parent``
  and the kernel kills everything left in the namespace, ``setsid`` or not;
- its own mount namespace holding only the system directories (read-only), a few
  files of ``/etc``, fresh ``/proc``, ``/dev`` and ``/tmp``, and the call's workspace
  root (read-write). The data directory (``security.db``, logs), home directories and
  the service's own files are not there;
- its own user, IPC, UTS and cgroup namespaces, no capabilities, no nested user
  namespaces, and no network unless ``MCP_COMMAND_NETWORK`` is set;
- an environment of PATH, HOME and LANG only (bwrap itself gets the same, so even
  pid 1's ``/proc/1/environ`` holds nothing of the service's);
- hard rlimits (``prlimit`` inside the box): processes, address space, CPU seconds,
  file size, no core files. RLIMIT_NPROC does not bind a process whose uid outside the
  box is 0, so a service running as root also puts each call in a pids cgroup of its
  own when it can create one (cgroup v1 ``pids`` or a v2 hierarchy with ``pids``).

A service running as root runs commands as uid/gid 65534 inside a user namespace: no
capabilities, yet the workspace (owned by root) stays writable, because the namespace
maps 65534 to the service's uid. That is also why the box shows only what it must:
file permissions alone would not hide root's files from it.

Whether bubblewrap works is probed once per process (cached); without it ``run_command``
is refused (503 ``sandbox_unavailable``) with the command that installs it, never run
unboxed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import shutil
import subprocess  # nosec B404
import uuid
from pathlib import Path

from services.mcp.process import CLEAN_PATH
from services.mcp.settings import McpSettings

log = logging.getLogger("ai_suite.mcp.box")

NOBODY = 65534
HOW_TO_ENABLE = (
    "install bubblewrap (`make system-deps`, or `apt-get install bubblewrap`) on a kernel"
    " that allows user namespaces, or point MCP_BWRAP_PATH at it; docs/security.md"
    ' "Commands run in a box"'
)
# System directories, read-only. On merged-/usr systems the top-level ones are symlinks
# and are recreated as symlinks inside the box.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc is not bound whole: as root-mapped-to-65534 the box would be the owner of
# /etc/shadow and of every other root-only file there.
_ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "python3",
    "python3.11",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)
_CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
_PROBE_TIMEOUT = 20.0
_CGROUP_REMOVE_TRIES = 100


class BoxUnavailable(Exception):
    """No box can be built here; the message says why and how to enable it."""


def _system_mounts() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in _ETC_ENTRIES:
        # -try: an entry this system does not have is skipped, not an error.
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _find(program: str) -> str | None:
    if os.path.isabs(program):
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=CLEAN_PATH)


@functools.lru_cache(maxsize=8)
def _probe(argv: tuple[str, ...]) -> str | None:
    """Run a trivial command in a box built like the real ones; None when it works."""
    try:
        done = subprocess.run(  # noqa: S603  # nosec B603
            argv,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"},
            cwd="/",
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be started ({exc})"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap failed ({detail[-1] if detail else f'exit {done.returncode}'})"
    return None


class Box:
    """Builds the bwrap argv for one call from the settings."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.bwrap = _find(settings.bwrap_path)
        self.prlimit = _find("prlimit")

    def unavailable_reason(self) -> str | None:
        """Why commands cannot be boxed here (with how to fix it), or None. Cached."""
        if self.bwrap is None:
            return f"run_command needs a sandbox: {self.settings.bwrap_path!r} not found; " + (
                HOW_TO_ENABLE
            )
        if self.prlimit is None:
            return "run_command needs prlimit (util-linux) on " + CLEAN_PATH
        true = shutil.which("true", path=CLEAN_PATH) or "/bin/true"
        reason = _probe(tuple(self.argv([true], root=None, cwd=Path("/"))))
        if reason is None:
            return None
        return f"run_command needs a sandbox: {reason}; {HOW_TO_ENABLE}"

    def check(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BoxUnavailable(reason)

    def _service_dirs(self) -> set[Path]:
        return {self.settings.data_dir.resolve(), self.settings.security_db_path.resolve().parent}

    def _root_mounts(self, root: Path) -> list[str]:
        """Bind ``root`` read-write; the service's directories around it stay out of reach.

        A service directory inside the root (a workspace that holds the data dir) is
        covered by an empty read-only tmpfs. One around it (the default:
        <data_dir>/workspace) exists in the box only as an empty read-only tmpfs holding
        the root's mount point, so nothing can be planted there either.
        """
        root = root.resolve()
        around = sorted(path for path in self._service_dirs() if root.is_relative_to(path))
        inside = sorted(
            path for path in self._service_dirs() if path.is_relative_to(root) and path != root
        )
        args: list[str] = []
        for path in around:
            args += ["--tmpfs", str(path)]
        args += ["--bind", str(root), str(root)]
        for path in around:
            args += ["--remount-ro", str(path)]
        for path in inside:
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        return args

    def argv(self, command: list[str], *, root: Path | None, cwd: Path) -> list[str]:
        """``command`` wrapped in bwrap and prlimit; ``root`` is bound read-write."""
        s = self.settings
        if self.bwrap is None or self.prlimit is None:
            raise BoxUnavailable(self.unavailable_reason() or HOW_TO_ENABLE)
        if root is not None and self._root_is_data_dir(root):
            raise BoxUnavailable(
                f"workspace root {root} is the data directory; set MCP_WORKSPACE_ROOTS to a"
                " directory that does not hold security.db"
            )
        args = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ]
        if s.command_network:
            args.append("--share-net")
        if os.geteuid() == 0:
            args += ["--uid", str(NOBODY), "--gid", str(NOBODY)]
        # The box's own /tmp (an empty tmpfs), never the host's.
        box_tmp = "/tmp"  # noqa: S108  # nosec B108
        home = str(root) if root is not None else box_tmp
        args += ["--clearenv", "--setenv", "PATH", CLEAN_PATH, "--setenv", "HOME", home]
        args += ["--setenv", "LANG", "C.UTF-8"]
        args += _system_mounts()
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", box_tmp]
        if root is not None:
            args += self._root_mounts(root)
        # bwrap's root is a tmpfs holding the mount points (the data dir's name among
        # them): read-only, so only the workspace and /tmp take writes.
        args += ["--remount-ro", "/"]
        args += ["--chdir", str(cwd), "--", self.prlimit]
        args += [
            f"--nproc={s.command_max_processes}",
            f"--as={s.command_max_memory_bytes}",
            f"--cpu={s.command_max_cpu_seconds}",
            f"--fsize={s.command_max_file_bytes}",
            "--core=0",
            "--",
            *command,
        ]
        return args

    def _root_is_data_dir(self, root: Path) -> bool:
        return root.resolve() in self._service_dirs()


class PidsCgroup:
    """A pids cgroup for one call, where this process may create one (root, cgroupfs rw).

    RLIMIT_NPROC is not enforced for uid 0 outside the box, so for a root service this is
    what stops a fork bomb. The child joins it before it execs bwrap (``join_fd``), so
    every process of the call is counted from the start.
    """

    def __init__(self, path: Path, procs_fd: int) -> None:
        self.path = path
        self.procs_fd = procs_fd

    @classmethod
    def create(cls, max_processes: int) -> PidsCgroup | None:
        for base in _CGROUP_ROOTS:
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            path = base / f"ai-suite-mcp-{uuid.uuid4().hex}"
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(max_processes))
                procs_fd = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                # A v2 hierarchy without the pids controller enabled for its children.
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path, procs_fd)
        return None

    def join(self) -> None:
        """In the child between fork and exec: move this process into the cgroup."""
        os.write(self.procs_fd, b"0")

    async def remove(self) -> None:
        """Delete the cgroup once the kernel has finished tearing the namespace down."""
        os.close(self.procs_fd)
        for _ in range(_CGROUP_REMOVE_TRIES):
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                # The killed processes exit asynchronously (milliseconds).
                await asyncio.sleep(0.05)
        # Still busy means a process outlived the call, which the PID namespace rules out.
        log.warning("could not remove the pids cgroup %s", self.path)
