"""The stack file's syntax: the agreed example parses as written; defaults; fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest
from ai_suite_pytest.stack.spec import Readiness, StackSpecError, load_stack, url_of

# The syntax agreed with the adopter example, verbatim.
AGREED = """\
name: demo
services:
  redis:
    command: [redis-server, --port, "{port}", --save, "", --appendonly, "no"]
    ready: {tcp: true, timeout: 20}          # connect to the service's port on its host
  postgres:
    command: [sh, "{root}/start-postgres.sh", "{data_dir}/pg", "{port}"]
    ready: {command: [pg_isready, -h, 127.0.0.1, -p, "{port}"], timeout: 60}
  worker:
    command: ["{python}", -m, myapp.worker]
    port: none                                # no port; {port} is then an error
    ready: {log: "worker started", timeout: 10}
  api:
    command: ["{python}", -m, myapp.api, --port, "{port}"]
    port: 8080            # pinned; or "20000-20100" (a range: the first free one); default: auto
    scheme: http          # default http; https allowed
    host: 127.0.0.1       # default 127.0.0.1
    ready: {http: /health, status: 200, timeout: 30}   # status default 200
  sidecar:
    command: [sleep, infinity]
    port: none
    ready: none           # no check: ready once started
fingerprint: ["myapp/**/*.py", "pyproject.toml"]   # top-level: inputs whose change restarts a kept stack
"""  # noqa: E501 - verbatim


@pytest.fixture
def agreed(tmp_path: Path) -> Path:
    (tmp_path / "myapp" / "sub").mkdir(parents=True)
    (tmp_path / "myapp" / "sub" / "api.py").write_text("A = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'myapp'\n")
    path = tmp_path / "stack.yaml"
    path.write_text(AGREED)
    return path


def test_the_agreed_syntax_parses_as_written(agreed: Path) -> None:
    spec = load_stack(agreed)
    by = {s.name: s for s in spec.services}
    assert by["redis"].ready == Readiness(kind="tcp", timeout=20.0)
    assert by["redis"].command is not None
    assert by["redis"].command[4] == ""
    assert by["postgres"].ready.kind == "command"
    assert by["postgres"].ready.command == ("pg_isready", "-h", "127.0.0.1", "-p", "{port}")
    assert (by["worker"].port, by["worker"].ready.kind, by["worker"].ready.log) == (
        "none",
        "log",
        "worker started",
    )
    assert by["api"].port_candidates() == range(8080, 8081)
    assert url_of(by["api"], 8080) == "http://127.0.0.1:8080"
    assert by["sidecar"].ready.kind == "none"
    assert not by["sidecar"].has_port
    assert [p.name for p in spec.fingerprint_files()] == ["api.py", "pyproject.toml"]


def test_defaults_keep_the_old_behaviour(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("services:\n  web: {command: [x]}\n  other: {command: [x], port: '100-102'}\n")
    web, other = load_stack(path).services
    assert web.ready == Readiness(kind="http", http="/health", status=200, timeout=30.0)
    assert (web.port, web.scheme, web.host) == ("auto", "http", "127.0.0.1")
    assert web.port_candidates() is None
    assert other.port_candidates() == range(100, 103)
    assert url_of(web.__class__(name="v6", host="::1", scheme="https"), 5) == "https://[::1]:5"


def test_fingerprint_follows_the_files_the_globs_match(agreed: Path) -> None:
    before = load_stack(agreed).fingerprint()
    assert load_stack(agreed).fingerprint() == before
    (agreed.parent / "myapp" / "sub" / "api.py").write_text("A = 2\n")
    changed = load_stack(agreed).fingerprint()
    assert changed != before
    (agreed.parent / "myapp" / "new.py").write_text("")
    assert load_stack(agreed).fingerprint() != changed  # a new file counts too


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(
        "colour: red\nservices:\n  a: {command: [x], scheme: ftp, port: 0}\n"
        "  b: {command: 'run me', env: {N: [1]}}\n"
    )
    with pytest.raises(StackSpecError) as info:
        load_stack(path)
    message = str(info.value)
    assert message.startswith(f"stack file {path}: ")
    for expected in (
        "colour: unknown key; allowed here: name, workdir",
        "services.a.scheme: must be one of http, https, not 'ftp'",
        "services.a.port: 0 is not a TCP port (1-65535)",
        "services.b.command: must be a non-empty list of strings (an argv",
        "services.b.env.N: must be a string, not [1]",
    ):
        assert expected in message
