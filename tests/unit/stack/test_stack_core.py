"""The stack plugin's pytest-free core: spec parsing, placeholders, coordination, state."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from ai_suite_pytest.stack.exclusive import Coordinator
from ai_suite_pytest.stack.spec import StackSpecError, load_stack, render
from ai_suite_pytest.stack.state import ProcessRecord, StackState, sweep


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_start_order_follows_dependencies(tmp_path: Path) -> None:
    spec = load_stack(
        write(
            tmp_path,
            "services:\n  c: {command: [x], depends_on: [b]}\n"
            "  b: {command: [x], depends_on: [a]}\n  a: {command: [x]}\n",
        )
    )
    assert [s.name for s in spec.start_order()] == ["a", "b", "c"]
    assert [s.name for s in spec.start_order(["b"])] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services:\n  a: {command: [x], depends_on: [a]}\n", "dependency cycle: a -> a"),
        ("services:\n  a: {command: [x], depends_on: [zz]}\n", "depends on unknown ['zz']"),
        ("services:\n  a: {command: [x], colour: red}\n", "colour"),
        ("services: [1, 2]\n", "expected a mapping"),
        ("services: {a: {command: [x]\n", "not valid YAML"),
    ],
)
def test_invalid_stack_files_name_the_file_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StackSpecError) as info:
        load_stack(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_stack_file(tmp_path: Path) -> None:
    with pytest.raises(StackSpecError, match="does not exist"):
        load_stack(tmp_path / "nope.yaml")


def test_fingerprint_changes_with_the_configuration(tmp_path: Path) -> None:
    one = load_stack(write(tmp_path, "services:\n  a: {command: [x]}\n")).fingerprint()
    same = load_stack(write(tmp_path, "services:\n  a: {command: [x]}\n")).fingerprint()
    other = load_stack(write(tmp_path, "services:\n  a: {command: [y]}\n")).fingerprint()
    assert one == same != other


def test_render_fills_placeholders_and_refuses_unknown_services() -> None:
    context = {"port": "1", "url:db": "http://127.0.0.1:2"}
    assert render("{url:db}/x?p={port}", context=context) == "http://127.0.0.1:2/x?p=1"
    assert render("{python}", context={}).endswith("python") or "python" in render(
        "{python}", context={}
    )
    with pytest.raises(StackSpecError, match="url:cache"):
        render("{url:cache}", context=context)
    assert render("{not-a-placeholder}", context=context) == "{not-a-placeholder}"


def test_exclusive_waits_for_shared_users_and_blocks_new_ones(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path, poll=0.005)
    events: list[str] = []
    release = threading.Event()

    def ordinary() -> None:
        with coordinator.shared():
            events.append("shared-start")
            release.wait(5)
            events.append("shared-end")

    first = threading.Thread(target=ordinary)
    first.start()
    while "shared-start" not in events:
        time.sleep(0.001)

    def fault_test() -> None:
        with coordinator.exclusive():
            events.append("exclusive")

    exclusive = threading.Thread(target=fault_test)
    exclusive.start()
    while not coordinator.flag.exists():
        time.sleep(0.001)
    assert "exclusive" not in events  # still waiting for the ordinary test
    release.set()
    first.join(5)
    exclusive.join(5)
    assert events == ["shared-start", "shared-end", "exclusive"]
    assert not coordinator.flag.exists()


def test_markers_of_dead_processes_do_not_block(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path)
    (coordinator.inflight / "999999999-0").touch()
    coordinator.flag.write_text("999999999")
    with coordinator.shared():
        pass
    (coordinator.inflight / "999999999-1").touch()
    with coordinator.exclusive(timeout=1):
        pass


def test_sweep_kills_leftovers_of_a_dead_owner(tmp_path: Path) -> None:
    import subprocess
    import sys

    import psutil

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        record = ProcessRecord(
            "svc", child.pid, child.pid, psutil.Process(child.pid).create_time(), 1, "log"
        )
        state = StackState(
            "demo",
            "fp",
            "local",
            owner_pid=999999999,
            owner_create_time=1.0,
            processes={"svc": record},
        )
        state.save(tmp_path / "demo.json")
        live = StackState(
            "live",
            "fp",
            "local",
            owner_pid=os.getpid(),
            owner_create_time=psutil.Process().create_time(),
        )
        live.save(tmp_path / "live.json")
        assert sweep(tmp_path) == [f"demo: svc (pid {child.pid})"]
        assert child.wait(timeout=5) == -9
        assert not (tmp_path / "demo.json").exists()
        assert (tmp_path / "live.json").exists()  # its owner is alive: not ours to touch
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_optional_must_be_a_boolean_and_the_error_names_the_service(tmp_path: Path) -> None:
    path = write(
        tmp_path, "services:\n  web: {command: [x]}\n  llama: {command: [x], optional: 1}\n"
    )
    with pytest.raises(StackSpecError) as info:
        load_stack(path)
    assert "services.llama.optional: must be true or false, not 1" in str(info.value)


def test_what_depends_on_an_optional_service_must_be_optional(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  a: {command: [x], optional: true}\n  b: {command: [x], depends_on: [a]}\n",
    )
    with pytest.raises(StackSpecError, match="add `optional: true` to 'b'"):
        load_stack(path)


def test_optional_services_a_backend_cannot_run_and_their_dependants(tmp_path: Path) -> None:
    spec = load_stack(
        write(
            tmp_path,
            "services:\n"
            "  web: {command: [x], compose_service: web}\n"
            "  llama: {command: [x], optional: true}\n"
            "  gw: {command: [x], compose_service: gw, depends_on: [llama], optional: true}\n",
        )
    )
    assert spec.without_runner("local") == {}
    unrunnable = spec.without_runner("compose")
    assert sorted(unrunnable) == ["gw", "llama"]
    assert "no 'compose_service'" in unrunnable["llama"]
    assert unrunnable["gw"].startswith("'gw' depends on 'llama'")


def test_requiring_a_service_makes_it_and_its_dependencies_required(tmp_path: Path) -> None:
    spec = load_stack(
        write(
            tmp_path,
            "services:\n  a: {command: [x], optional: true}\n"
            "  b: {command: [x], depends_on: [a], optional: true}\n"
            "  c: {command: [x], optional: true}\n",
        )
    )
    required = spec.requiring(["b"])
    assert [s.optional for s in required.services] == [False, False, True]
    assert required.fingerprint() != spec.fingerprint()
    assert spec.requiring([]) == spec
    with pytest.raises(StackSpecError, match="no such service"):
        spec.requiring(["zz"])
