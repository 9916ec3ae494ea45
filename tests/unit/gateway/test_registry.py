"""Model registry: YAML loading, validation messages, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.registry import (
    Backend,
    ModelEntry,
    ModelRegistry,
    RegistryError,
    load_registry,
)
from services.gateway.selection import ModelKind

FULL = """\
backends:
  - name: llamacpp
    url: http://127.0.0.1:8001/v1/
  - name: ollama
    url: https://ollama.internal:11434/v1
    api_key_env: OLLAMA_KEY
models:
  - name: chat
    kind: chat
    upstream_model: qwen2.5-7b-instruct
    backends: [llamacpp, ollama]
  - name: small
    backends: [ollama]
  - name: coder
    kind: code
    backends: [ollama, llamacpp]
  - name: coder-big
    kind: code
    backends: [llamacpp]
default_model_for: {code: coder-big}
passthrough_backend: llamacpp
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        load_registry(path, None)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return load_registry(write(tmp_path, FULL), None)


def test_loads_backends_and_models(registry: ModelRegistry) -> None:
    assert [b.name for b in registry.backends] == ["llamacpp", "ollama"]
    assert registry.backend("llamacpp").url == "http://127.0.0.1:8001/v1"  # slash stripped
    assert registry.backend("ollama").api_key_env == "OLLAMA_KEY"
    assert [m.name for m in registry.list_models()] == ["chat", "small", "coder", "coder-big"]
    small = registry.list_models()[1]
    assert small.kind is ModelKind.CHAT  # default kind
    assert small.upstream_model == "small"  # default upstream name
    assert registry.passthrough_backend == "llamacpp"


def test_resolve_known_model_keeps_fallback_order(registry: ModelRegistry) -> None:
    resolved = registry.resolve("chat")
    assert resolved is not None
    assert resolved.alias == "chat"
    assert resolved.upstream_model == "qwen2.5-7b-instruct"
    assert [b.name for b in resolved.backends] == ["llamacpp", "ollama"]
    assert resolved.kind is ModelKind.CHAT
    assert not resolved.passthrough


def test_resolve_unknown_goes_to_passthrough(registry: ModelRegistry) -> None:
    resolved = registry.resolve("llama3:8b")
    assert resolved is not None
    assert resolved.passthrough
    assert resolved.upstream_model == "llama3:8b"
    assert [b.name for b in resolved.backends] == ["llamacpp"]
    assert resolved.kind is None


def test_resolve_unknown_without_passthrough_is_none(tmp_path: Path) -> None:
    registry = load_registry(
        write(tmp_path, FULL.replace("passthrough_backend: llamacpp", "")), None
    )
    assert registry.resolve("llama3:8b") is None


def test_resolve_auto_uses_default_model_for_then_first_of_kind(registry: ModelRegistry) -> None:
    code = registry.resolve_auto(ModelKind.CODE)
    chat = registry.resolve_auto(ModelKind.CHAT)
    assert code is not None
    assert code.alias == "coder-big"  # explicit default
    assert chat is not None
    assert chat.alias == "chat"  # first of its kind


def test_resolve_auto_falls_back_to_chat_without_code_model(tmp_path: Path) -> None:
    text = """\
backends: [{name: b, url: "http://h:1"}]
models: [{name: general, backends: [b]}]
"""
    registry = load_registry(write(tmp_path, text), None)
    code = registry.resolve_auto(ModelKind.CODE)
    assert code is not None
    assert code.alias == "general"


def test_resolve_auto_falls_back_to_first_model(tmp_path: Path) -> None:
    text = """\
backends: [{name: b, url: "http://h:1"}]
models: [{name: coder, kind: code, backends: [b]}]
"""
    registry = load_registry(write(tmp_path, text), None)
    chat = registry.resolve_auto(ModelKind.CHAT)
    assert chat is not None
    assert chat.alias == "coder"


def test_unknown_backend_reference_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, FULL.replace("[ollama, llamacpp]", "[ollama, vllm]"))
    assert "models[2].backends" in message
    assert "'vllm'" in message
    assert "known: llamacpp, ollama" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: ollama", "name: llamacpp", "backends: duplicate name 'llamacpp'"),
        ("name: small", "name: chat", "models: duplicate name 'chat'"),
        ("code: coder-big", "code: missing", "default_model_for.code: unknown model 'missing'"),
        ("passthrough_backend: llamacpp", "passthrough_backend: x", "passthrough_backend"),
    ],
)
def test_cross_reference_errors(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in load_error(tmp_path, FULL.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ("name: llamacpp", "name: Llama CPP", "backends[0].name", "'Llama CPP'"),
        ("url: http://127.0.0.1:8001/v1/", "url: ftp://x", "backends[0].url", "'ftp://x'"),
        ("url: http://127.0.0.1:8001/v1/", "url: localhost:8001", "backends[0].url", "localhost"),
        ("api_key_env: OLLAMA_KEY", "api_key_env: 'bad name'", "backends[1].api_key_env", "bad"),
        ("kind: chat", "kind: poetry", "models[0].kind", "'poetry'"),
        ("[llamacpp]", "[]", "models[3].backends", "[]"),
        ("[ollama]", "[ollama, ollama]", "models[1].backends", "more than once"),
        ("name: small", "name: auto", "models[1].name", "reserved"),
        ("passthrough_backend:", "passthrough:", "passthrough", "not permitted"),
        ("{code: coder-big}", "{cdoe: coder-big}", "default_model_for.cdoe", "'cdoe'"),
    ],
)
def test_field_errors_name_key_and_value(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    message = load_error(tmp_path, FULL.replace(old, new, 1))
    line = next(line for line in message.splitlines() if key in line)
    assert value in line


def test_missing_field_is_named(tmp_path: Path) -> None:
    assert "backends[0].url" in load_error(tmp_path, "backends: [{name: a}]\n")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, "backends: [{name: A, url: x}]\nmodels: [{name: m, backends: []}]\n"
    )
    assert "backends[0].name" in message
    assert "backends[0].url" in message
    assert "models[0].backends" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backends: [\n", "invalid YAML"),
        ("", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_unparseable_files(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(RegistryError, match=r"absent\.yaml"):
        load_registry(path, None)


def test_registry_error_is_a_value_error() -> None:
    assert issubclass(RegistryError, ValueError)


def test_file_wins_over_inference_url(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, FULL), "http://other:1")
    assert "default" not in [b.name for b in registry.backends]


def test_inference_url_mode() -> None:
    registry = load_registry(None, "http://127.0.0.1:8080/v1/")
    assert registry.backends == [Backend(name="default", url="http://127.0.0.1:8080/v1")]
    assert [(m.name, m.kind, m.backends) for m in registry.list_models()] == [
        ("chat", ModelKind.CHAT, ["default"]),
        ("code", ModelKind.CODE, ["default"]),
    ]
    assert registry.passthrough_backend == "default"
    code = registry.resolve_auto(ModelKind.CODE)
    assert code is not None
    assert code.alias == "code"
    passthrough = registry.resolve("anything")
    assert passthrough is not None
    assert passthrough.passthrough


def test_inference_url_must_be_http() -> None:
    with pytest.raises(RegistryError, match="inference URL"):
        load_registry(None, "127.0.0.1:8080")


def test_empty_mode() -> None:
    registry = load_registry(None, None)
    assert registry == ModelRegistry.empty()
    assert registry.backends == []
    assert registry.list_models() == []
    assert registry.passthrough_backend is None
    assert registry.resolve("chat") is None
    assert registry.resolve_auto(ModelKind.CHAT) is None


def test_backend_lookup_unknown_raises_key_error(registry: ModelRegistry) -> None:
    with pytest.raises(KeyError):
        registry.backend("nope")


def test_api_key_read_from_named_env_var(registry: ModelRegistry) -> None:
    assert registry.backend("ollama").api_key({"OLLAMA_KEY": "s3cret"}) == "s3cret"
    assert registry.backend("ollama").api_key({}) is None
    assert registry.backend("llamacpp").api_key({"OLLAMA_KEY": "s3cret"}) is None


def test_list_models_returns_a_copy(registry: ModelRegistry) -> None:
    registry.list_models().clear()
    assert len(registry.list_models()) == 4


def test_model_entry_direct_construction() -> None:
    entry = ModelEntry(name="m", backends=["b"])
    assert entry.upstream_model == "m"
    assert entry.kind is ModelKind.CHAT
