"""Every sandbox rule: traversal, absolute paths, symlinks (also swapped in late),
unicode and URL-encoding tricks, NUL bytes, special files, size limits."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.mcp.sandbox import SandboxError, Workspace, parse_parts


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Workspace, Path, Path]:
    root = tmp_path / "ws"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_text("alpha")
    return Workspace([root]), root, outside


def read(ws: Workspace, path: str, limit: int = 1000) -> bytes:
    return ws.read_file(ws.locate(path), limit)[0]


def write(ws: Workspace, path: str, data: bytes = b"x", create_dirs: bool = False) -> bool:
    return ws.write_file(ws.locate(path), data, create_dirs=create_dirs)


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "docs/../../outside/secret.txt",
        "docs/..",
        "..",
        "/etc/passwd",
        "/",
        "．．/outside/secret.txt",  # fullwidth dots normalise to '..'
        "‥/outside/secret.txt",  # two-dot leader normalises to '..'
        "docs／..／..／outside",  # fullwidth solidus normalises to '/'
    ],
)
def test_escapes_are_refused_with_403(layout, path: str) -> None:
    ws, _, _ = layout
    with pytest.raises(SandboxError) as info:
        read(ws, path)
    assert info.value.status == 403
    assert info.value.code == "path_outside_workspace"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("docs/a\x00.txt", "NUL"),
        ("docs\\a.txt", "separator"),
        ("docs/\x1b[31m", "control"),
        ("a" * 5000, "longer"),
        ("/".join(["d"] * 70), "deeper"),
    ],
)
def test_malformed_paths_are_refused_with_400(layout, path: str, fragment: str) -> None:
    ws, _, _ = layout
    with pytest.raises(SandboxError, match=fragment) as info:
        ws.locate(path)
    assert info.value.status == 400


def test_url_encoding_is_taken_literally(layout) -> None:
    ws, root, _ = layout
    assert write(ws, "%2e%2e/%2e%2e%2fsecret", create_dirs=True) is True
    assert (root / "%2e%2e" / "%2e%2e%2fsecret").read_bytes() == b"x"


def test_plain_unicode_names_work(layout) -> None:
    ws, root, _ = layout
    write(ws, "문서/보고서.txt", "안녕".encode(), create_dirs=True)
    assert read(ws, "문서/보고서.txt").decode() == "안녕"
    assert (root / "문서" / "보고서.txt").exists()


def test_absolute_path_inside_a_root_is_accepted(layout) -> None:
    ws, root, _ = layout
    assert read(ws, f"{root}/docs/a.txt") == b"alpha"
    assert ws.locate(str(root)).parts == ()
    with pytest.raises(SandboxError):
        ws.locate(f"{root}-evil/docs")  # a sibling with the root as a name prefix


def test_second_root_is_reached_by_absolute_path(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    ws = Workspace([first, second])
    (second / "f.txt").write_text("two")
    assert read(ws, f"{second}/f.txt") == b"two"
    assert ws.locate("f.txt").root == first


def test_symlinked_file_is_not_followed(layout) -> None:
    ws, root, outside = layout
    (root / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(SandboxError, match="symlink") as info:
        read(ws, "link.txt")
    assert info.value.status == 403
    with pytest.raises(SandboxError, match="symlink"):
        write(ws, "link.txt", b"overwrite")
    assert (outside / "secret.txt").read_text() == "top secret"


def test_symlinked_directory_is_not_followed(layout) -> None:
    ws, root, outside = layout
    (root / "out").symlink_to(outside)
    for action in (
        lambda: read(ws, "out/secret.txt"),
        lambda: write(ws, "out/new.txt"),
        lambda: ws.list_dir(ws.locate("out")),
    ):
        with pytest.raises(SandboxError, match="symlink"):
            action()
    assert not (outside / "new.txt").exists()


def test_symlink_swapped_in_after_the_check_is_still_refused(layout, monkeypatch) -> None:
    ws, root, outside = layout
    target = root / "docs" / "a.txt"
    original = Workspace._lkind

    def check_then_swap(dir_fd: int, name: str) -> str | None:
        kind = original(dir_fd, name)  # the check sees a regular file ...
        target.unlink()
        target.symlink_to(outside / "secret.txt")  # ... then an attacker swaps it
        return kind

    monkeypatch.setattr(Workspace, "_lkind", staticmethod(check_then_swap))
    with pytest.raises(SandboxError, match="symlink"):
        read(ws, "docs/a.txt")


def test_directory_swapped_for_symlink_during_write_is_refused(layout, monkeypatch) -> None:
    ws, root, outside = layout
    real_open = os.open
    swapped = {"done": False}

    def swapping_open(path, flags, *args, **kwargs):
        if path == "docs" and not swapped["done"]:
            swapped["done"] = True
            os.rename(root / "docs", root / "docs-moved")
            (root / "docs").symlink_to(outside)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(SandboxError, match="symlink"):
        write(ws, "docs/planted.txt")
    assert not (outside / "planted.txt").exists()


def test_fifo_and_socket_are_refused(layout) -> None:
    ws, root, _ = layout
    os.mkfifo(root / "pipe")
    with pytest.raises(SandboxError, match="only regular files"):
        read(ws, "pipe")
    with pytest.raises(SandboxError, match="only regular files"):
        write(ws, "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        with pytest.raises(SandboxError, match="only regular files"):
            read(ws, "sock")


def test_device_file_is_refused(layout) -> None:
    ws, root, _ = layout
    try:
        os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with pytest.raises(SandboxError, match="only regular files"):
        read(ws, "null")


def test_read_limit_and_size(layout) -> None:
    ws, root, _ = layout
    (root / "big.bin").write_bytes(b"y" * 100)
    data, size = ws.read_file(ws.locate("big.bin"), 10)
    assert (data, size) == (b"y" * 10, 100)


def test_errors_for_missing_and_wrong_kinds(layout) -> None:
    ws, _, _ = layout
    with pytest.raises(SandboxError, match="does not exist") as info:
        read(ws, "nope.txt")
    assert info.value.code == "path_not_found"
    with pytest.raises(SandboxError, match="is a directory"):
        read(ws, "docs")
    with pytest.raises(SandboxError, match="not a directory"):
        ws.list_dir(ws.locate("docs/a.txt"))
    with pytest.raises(SandboxError, match="does not exist"):
        write(ws, "missing/dir/f.txt")
    with pytest.raises(SandboxError, match="file path is required"):
        write(ws, ".")


def test_write_is_atomic_and_reports_creation(layout) -> None:
    ws, root, _ = layout
    assert write(ws, "docs/a.txt", b"beta") is False
    assert write(ws, "new/deep/f.txt", b"gamma", create_dirs=True) is True
    assert (root / "docs" / "a.txt").read_bytes() == b"beta"
    assert not [p for p in (root / "docs").iterdir() if p.name.endswith(".tmp")]


def test_write_through_a_hard_link_never_changes_the_file_outside(layout) -> None:
    """A hard link inside the workspace to a file outside it (made by someone with a
    shell: no tool can make one) must not turn a write into a write outside."""
    ws, root, outside = layout
    os.link(outside / "secret.txt", root / "docs" / "linked.txt")
    assert write(ws, "docs/linked.txt", b"overwritten") is False
    assert (root / "docs" / "linked.txt").read_bytes() == b"overwritten"
    assert (outside / "secret.txt").read_text() == "top secret"
    assert (outside / "secret.txt").stat().st_nlink == 1  # the link was replaced


def test_walk_skips_symlinks_git_and_special_files(layout) -> None:
    ws, root, outside = layout
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("x")
    (root / "out").symlink_to(outside)
    (root / "ln.txt").symlink_to(outside / "secret.txt")
    os.mkfifo(root / "fifo")
    found = [path for path, _, _ in ws.walk_files(ws.locate("."))]
    assert found == ["docs/a.txt"]


def test_parse_parts_drops_dots_and_empty_segments() -> None:
    assert parse_parts("./a//b/./c/") == ("a", "b", "c")
    assert parse_parts("") == ()


SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "%2e%2e",
        "..%2f",
        "．．",
        "‥",
        "／",
        "\\..",
        "\x00",
        "~",
        "docs",
        "a.txt",
        "out",
        "ln",
        "etc",
        "passwd",
        "secret.txt",
        "ｅｔｃ",
        "..\u200b",
    ]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    segments=st.lists(SEGMENTS, min_size=1, max_size=6),
    absolute=st.sampled_from(["", "/", "ROOT"]),
)
def test_hostile_paths_never_leave_the_workspace(tmp_path: Path, segments, absolute) -> None:
    base = tmp_path / "h"
    root, outside = base / "ws", base / "outside"
    if not root.exists():
        root.mkdir(parents=True)
        outside.mkdir()
        (outside / "secret.txt").write_text("top secret")
        (root / "docs").mkdir()
        (root / "out").symlink_to(outside)
        (root / "ln").symlink_to(outside / "secret.txt")
    ws = Workspace([root])
    path = "/".join(segments)
    if absolute == "/":
        path = "/" + path
    elif absolute == "ROOT":
        path = f"{root}/{path}"
    before = sorted(p.name for p in outside.iterdir())
    for action in ("read", "write", "list"):
        try:
            location = ws.locate(path)
            if action == "read":
                data, _ = ws.read_file(location, 100)
                assert data != b"top secret"
            elif action == "write":
                ws.write_file(location, b"x", create_dirs=True)
                real = os.path.realpath(location.absolute)
                assert real.startswith(str(root) + os.sep)
            else:
                ws.list_dir(location)
        except SandboxError:
            pass
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "secret.txt").read_text() == "top secret"
