"""The pure parts of the git hardening: the environment and the config overrides.

The real git runs are in tests/integration/mcp/test_mcp_git_hardening.py.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.mcp.process import CLEAN_PATH
from services.mcp.tools.base import ToolError
from services.mcp.tools.git import SAFE_CONFIG, SAFE_OPTIONS, config_overrides, git_env


def listing(*entries: str) -> str:
    return "".join(f"{entry}\0" for entry in entries)


def test_every_filter_driver_is_overridden_once() -> None:
    text = listing(
        "core.bare\nfalse",
        "filter.lfs.clean\ngit-lfs clean -- %f",
        "filter.lfs.smudge\ngit-lfs smudge -- %f",
        "filter.lfs.process\ngit-lfs filter-process",
        "filter.lfs.required\ntrue",
        "filter.A.b=c.clean\nx",  # a driver name with dots and '='
        "filter.A.b=c.clean\ny",  # set twice: one override
        "filter.boolonly.clean",  # no value
        "diff.x.textconv\ncat",  # handled by --no-textconv, not overridden
    )
    assert config_overrides(text) == [
        ("filter.lfs.clean", ""),
        ("filter.lfs.smudge", ""),
        ("filter.lfs.process", ""),
        ("filter.lfs.required", "false"),
        ("filter.A.b=c.clean", ""),
        ("filter.boolonly.clean", ""),
    ]


def test_no_filters_no_overrides() -> None:
    assert config_overrides(listing("core.bare\nfalse", "filter.x\nodd", "user.name\nx")) == []


@pytest.mark.parametrize(
    "key", ["include.path", "includeif.gitdir:/x/.path", "includeIf.onbranch:main.path"]
)
def test_includes_are_refused_by_name(key: str) -> None:
    with pytest.raises(ToolError) as info:
        config_overrides(listing("core.bare\nfalse", f"{key}\n../evil.cfg"))
    assert info.value.code == "git_config_refused"
    assert info.value.status == 403
    assert repr(key) in info.value.message


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="\0\n\ufffd", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=30,
    )
)
def test_any_driver_name_is_overridden(name: str) -> None:
    assert config_overrides(listing(f"filter.{name}.clean\nx")) == [(f"filter.{name}.clean", "")]


def test_the_environment_is_only_what_git_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "AI_SUITE_DATA_DIR", "GIT_EXTERNAL_DIFF", "GIT_PAGER"):
        monkeypatch.setenv(name, "leak")
    env = git_env("/tmp/empty-home", [("filter.x.clean", "")])
    assert env == {
        "PATH": CLEAN_PATH,
        "LANG": "C",
        "LC_ALL": "C",
        "HOME": "/tmp/empty-home",
        "GIT_DIR": ".git",
        "GIT_WORK_TREE": ".",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "filter.x.clean",
        "GIT_CONFIG_VALUE_0": "",
    }


def test_safe_options_switch_off_every_program_key() -> None:
    config = dict(SAFE_CONFIG)
    assert config["core.hooksPath"] == os.devnull
    assert config["core.fsmonitor"] == "false"
    assert config["protocol.allow"] == "never"
    assert config["credential.helper"] == ""
    assert config["log.showSignature"] == "false"
    assert SAFE_OPTIONS[:2] == ("--no-pager", "--literal-pathspecs")
    assert SAFE_OPTIONS[2:4] == ("-c", "core.hooksPath=/dev/null")


def test_a_driver_name_lost_in_decoding_is_refused() -> None:
    with pytest.raises(ToolError) as info:
        config_overrides(listing("filter.\ufffd.clean\ncat"))
    assert info.value.code == "git_config_refused"
