"""Mistakes in the stack file, options, ini values and markers stop pytest before any
test runs (exit 4), with a message naming the key, the value and the fix."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

SERVICE = "  {name}:\n    command: [sleep, '300']\n"


@pytest.mark.parametrize(
    ("services", "message"),
    [
        pytest.param(
            "  worker:\n    command: [app, --port, '{port}']\n    port: none\n    ready: none\n",
            "*services.worker.command[[]2]: '{port}' uses {port}, but 'worker' has `port: none`;"
            " remove `port: none` or the placeholder*",
            id="port-of-portless",
        ),
        pytest.param(
            "  api:\n    command: [app]\n    env: {DB: '{url:nope}'}\n",
            "*services.api.env.DB: '{url:nope}' names no service of this stack; it has api*",
            id="unknown-url",
        ),
        pytest.param(
            "  worker:\n    command: [app]\n    port: none\n    ready: none\n"
            "  api:\n    command: [app, '{port:worker}']\n",
            "*services.api.command[[]1]: '{port:worker}': service 'worker' has `port: none`,"
            " so it has no port*",
            id="port-of-other-portless",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    ready: {http: /x, tcp: true}\n",
            "*services.a.ready: has http and tcp: give exactly one kind of check*",
            id="two-kinds",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    ready: {htp: /x}\n",
            "*services.a.ready.htp: unknown key; allowed here: http, tcp, command, log,"
            " status, timeout*",
            id="unknown-ready-key",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    port: eighty\n",
            "*services.a.port: 'eighty' is not a port; write auto (a free port, the default),"
            ' none (no port), 8080 or "20000-20100"*',
            id="bad-port",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    port: '200-100'\n",
            "*services.a.port: range '200-100' must be LOW-HIGH with 1 <= LOW <= HIGH*",
            id="bad-range",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    scheme: ftp\n",
            "*services.a.scheme: must be one of http, https, not 'ftp'*",
            id="bad-scheme",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    port: none\n    ready: {tcp: true}\n",
            "*services.a.ready: a tcp check needs a port, and this service has `port: none`*",
            id="tcp-without-port",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    ready: {log: 'started (', timeout: 5}\n",
            "*services.a.ready.log: 'started (' is not a valid regular expression*",
            id="bad-regex",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    ready: {tcp: true, status: 200}\n",
            "*services.a.ready.status: only applies to an http check, not to tcp*",
            id="status-without-http",
        ),
        pytest.param(
            "  a:\n    command: [app]\n    ready: {http: /x, timeout: soon}\n",
            "*services.a.ready.timeout: must be a number of seconds > 0, not 'soon'*",
            id="bad-timeout",
        ),
    ],
)
def test_stack_file_mistakes_are_usage_errors(
    pytester: pytest.Pytester, services: str, message: str
) -> None:
    pytester.makefile(".yaml", stack="name: bad\nservices:\n" + services)
    pytester.makeini("[pytest]\nstack_file = stack.yaml\n")
    pytester.makepyfile("def test_x():\n    pass\n")  # no test even uses the stack
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*stack file {pytester.path / 'stack.yaml'}: *"])
    result.stderr.fnmatch_lines([message])


def test_a_fingerprint_glob_matching_nothing_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", stack="services:\n  a: {command: [x]}\nfingerprint: [app/*.py]\n")
    pytester.makeini("[pytest]\nstack_file = stack.yaml\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*fingerprint[[]0]: 'app/*.py' matches no file under *; fix the pattern*"]
    )


def test_a_marker_with_arguments_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", stack="services:\n  a: {command: [x]}\n")
    pytester.makeini("[pytest]\nstack_file = stack.yaml\n")
    pytester.makepyfile(
        "import pytest\n@pytest.mark.stack_exclusive('web')\ndef test_x():\n    pass\n"
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_*.py::test_x: @pytest.mark.stack_exclusive takes no arguments, got args=('web',)*"]
    )
    # Under xdist a worker cannot stop the run with a usage error: the test fails, saying so.
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*stack_exclusive takes no arguments, got args=('web',)*"])


def test_stack_require_without_a_stack_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--stack-require=llama")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--stack-require llama needs a stack file: set `stack_file`*"])


def test_a_state_dir_that_is_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", state="not a directory")
    result = pytester.runpytest_subprocess("--stack-state-dir=state.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--stack-state-dir (ini stack_state_dir) = *state.txt is a file, not a directory*"]
    )


def test_a_bad_stack_keep_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nstack_keep = sometimes\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini stack_keep must be true or false, not 'sometimes'*"])
