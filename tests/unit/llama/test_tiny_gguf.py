"""The tiny test model: a GGUF file llama.cpp can load, the same bytes for the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType

from tests.support import tiny_gguf


def field(reader: GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def test_reads_back_with_llama_metadata(tmp_path: Path) -> None:
    path = tiny_gguf.write_model(tmp_path / "m.gguf")
    reader = GGUFReader(path)
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.embedding_length") == tiny_gguf.EMBEDDING_WIDTH
    assert field(reader, "llama.block_count") == tiny_gguf.LAYERS
    assert field(reader, "llama.attention.head_count") == tiny_gguf.HEADS
    assert field(reader, "llama.attention.head_count_kv") == tiny_gguf.KV_HEADS
    assert field(reader, "llama.pooling_type") == 1  # mean: one embedding per input
    assert field(reader, "tokenizer.ggml.model") == "llama"
    assert field(reader, "tokenizer.chat_template") == tiny_gguf.CHAT_TEMPLATE
    scores = reader.fields["tokenizer.ggml.scores"]
    assert scores.types == [GGUFValueType.ARRAY, GGUFValueType.FLOAT32]
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3] == "<0x00>"
    assert tokens[3 + 255] == "<0xFF>"
    assert "▁hello" in tokens
    assert len(field(reader, "tokenizer.ggml.token_type")) == len(tokens)
    assert field(reader, "tokenizer.ggml.eos_token_id") == tiny_gguf.EOS
    assert 300_000 < path.stat().st_size < 700_000  # "about 0.5 MB"


def test_tensors_have_llama_names_and_reversed_dims(tmp_path: Path) -> None:
    reader = GGUFReader(tiny_gguf.write_model(tmp_path / "m.gguf"))
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    n_vocab = len(tiny_gguf.vocabulary().tokens)
    width, kv = tiny_gguf.EMBEDDING_WIDTH, tiny_gguf.KV_HEADS * 16
    # GGUF lists ne[0] (the row length) first: numpy (n_vocab, width) is [width, n_vocab].
    assert shapes["token_embd.weight"] == [width, n_vocab]
    assert shapes["output.weight"] == [width, n_vocab]
    assert shapes["output_norm.weight"] == [width]
    for layer in range(tiny_gguf.LAYERS):
        blk = f"blk.{layer}"
        assert shapes[f"{blk}.attn_q.weight"] == [width, width]
        assert shapes[f"{blk}.attn_k.weight"] == [width, kv]
        assert shapes[f"{blk}.attn_v.weight"] == [width, kv]
        assert shapes[f"{blk}.attn_output.weight"] == [width, width]
        assert shapes[f"{blk}.ffn_gate.weight"] == [width, tiny_gguf.FEED_FORWARD]
        assert shapes[f"{blk}.ffn_up.weight"] == [width, tiny_gguf.FEED_FORWARD]
        assert shapes[f"{blk}.ffn_down.weight"] == [tiny_gguf.FEED_FORWARD, width]
        assert shapes[f"{blk}.attn_norm.weight"] == [width]
        assert shapes[f"{blk}.ffn_norm.weight"] == [width]
    assert len(shapes) == 3 + 9 * tiny_gguf.LAYERS
    stored = {t.name: np.asarray(t.data) for t in reader.tensors}
    expected = tiny_gguf.tensors()
    assert np.array_equal(stored["blk.1.ffn_down.weight"], expected["blk.1.ffn_down.weight"])


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    first = tiny_gguf.write_model(tmp_path / "a.gguf").read_bytes()
    again = tiny_gguf.write_model(tmp_path / "b.gguf").read_bytes()
    other = tiny_gguf.write_model(tmp_path / "c.gguf", seed=7).read_bytes()
    assert first == again
    assert other != first
    assert len(other) == len(first)


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "models" / "m.gguf"
    tiny_gguf.write_model(path)
    tiny_gguf.write_model(path)  # a second writer replaces it with the same bytes
    assert [p.name for p in path.parent.iterdir()] == ["m.gguf"]


def test_end_of_sequence_and_non_ascii_bytes_are_never_sampled() -> None:
    # The constant dimension 0 dominates the final norm's output, so a row that is very
    # negative there can never win: generation ends only at max_tokens or a stop string.
    output = tiny_gguf.tensors()["output.weight"]
    never = set(tiny_gguf.NEVER_SAMPLED)
    assert {tiny_gguf.UNK, tiny_gguf.BOS, tiny_gguf.EOS} <= never
    assert tiny_gguf.FIRST_BYTE_TOKEN + 0x80 in never
    assert tiny_gguf.FIRST_BYTE_TOKEN + ord("a") not in never
    assert tiny_gguf.FIRST_BYTE_TOKEN + ord("\n") not in never
    assert all(output[t, 0] < -50 for t in never)
    assert all(output[t, 0] == 0 for t in range(len(output)) if t not in never)
