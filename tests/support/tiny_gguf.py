"""A tiny llama-architecture GGUF model, written at run time: no download, no model hub.

Random weights from a fixed seed, so the same seed gives the same bytes. Its output is
gibberish, but everything around it is real llama.cpp: the SentencePiece-style tokenizer
(the 256 byte tokens plus a few pieces), sampling, the chat template, streaming, ``usage``
and embeddings. About 0.5 MB; llama.cpp loads it in well under a second.

Tensor names and shapes follow llama.cpp's ``llama`` architecture. GGUF stores each
tensor's dimensions in reverse order of numpy's shape (ggml's ne[0] is the row length),
so ``token_embd`` is numpy ``(n_vocab, n_embd)`` and GGUF ``[n_embd, n_vocab]``; the
writer reverses them.

Two choices make the tests deterministic rather than lucky:

* dimension 0 of every token embedding is a large constant, which dominates the hidden
  state after the final RMS norm; ``output``'s rows for ``</s>``, ``<s>`` and ``<unk>``
  (and for the byte tokens that are not printable ASCII, see :data:`NEVER_SAMPLED`) are
  strongly negative in that dimension, so the model never emits end-of-sequence.
  Generation ends only at ``max_tokens`` or a ``stop`` string, never by chance;
* mean pooling is declared (``llama.pooling_type``), so ``/v1/embeddings`` returns one
  vector of ``EMBEDDING_WIDTH`` per input rather than one per token.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

ARCHITECTURE = "llama"
EMBEDDING_WIDTH = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2  # grouped-query attention, as most current llama-family models use
FEED_FORWARD = 128
CONTEXT_LENGTH = 4096
DEFAULT_SEED = 20260
MODEL_NAME = "tiny-llama"

UNK, BOS, EOS = 0, 1, 2
FIRST_BYTE_TOKEN = 3  # <0x00>; byte b is token FIRST_BYTE_TOKEN + b
# Tokens the model never emits: the specials, and the byte tokens that are not printable
# ASCII (newline and tab are). A lone byte >= 0x80 is half a UTF-8 character, and
# llama-cpp-python keeps generating past max_tokens until such a character is complete
# (its "multibyte fix"), which a random model would hit all the time.
NEVER_SAMPLED = [UNK, BOS, EOS] + [
    FIRST_BYTE_TOKEN + byte
    for byte in range(256)
    if not (0x20 <= byte < 0x7F or byte in (0x09, 0x0A))
]
# Whole-word pieces after the specials and the 256 byte tokens; "▁" (U+2581) is
# SentencePiece's space marker. Anything else is spelled with byte tokens.
PIECES = [
    "▁",
    "▁the",
    "▁a",
    "▁hello",
    "▁world",
    "▁tiny",
    "▁llama",
    "▁model",
    "▁test",
    "▁is",
    "▁are",
    "▁you",
    "▁there",
    "?",
    ".",
    ",",
    "!",
    "e",
    "t",
    "a",
    "o",
    "n",
    "s",
    "r",
    "l",
    "he",
    "in",
    "er",
    "an",
    "th",
]
# A minimal ChatML-like template: llama.cpp (and llama-cpp-python's server) format chat
# requests with the model's own `tokenizer.chat_template`, as they do for real models.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]
    scores: list[float]
    types: list[int]


def vocabulary() -> Vocabulary:
    """<unk>, <s>, </s>, the byte tokens <0x00>..<0xFF>, then :data:`PIECES`."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    tokens += PIECES
    types += [gguf.TokenType.NORMAL] * len(PIECES)
    # SentencePiece scores are log-probabilities: the tokenizer prefers higher ones when
    # merging. Longer pieces score higher, so "▁hello" wins over its letters.
    scores = [0.0] * (3 + 256) + [-10.0 + len(piece) for piece in PIECES]
    return Vocabulary(tokens, scores, [int(t) for t in types])


def tensors(seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Every tensor of the model, by GGUF name, in numpy shape (rows, row length)."""
    rng = np.random.default_rng(seed)
    n_vocab = len(vocabulary().tokens)
    head_dim = EMBEDDING_WIDTH // HEADS
    kv_width = KV_HEADS * head_dim

    def weights(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embeddings = weights(n_vocab, EMBEDDING_WIDTH, scale=0.5)
    embeddings[:, 0] = 8.0  # the constant dimension (see the module docstring)
    out: dict[str, np.ndarray] = {"token_embd.weight": embeddings}
    for layer in range(LAYERS):
        prefix = f"blk.{layer}"
        out[f"{prefix}.attn_norm.weight"] = np.ones(EMBEDDING_WIDTH, dtype=np.float32)
        out[f"{prefix}.attn_q.weight"] = weights(EMBEDDING_WIDTH, EMBEDDING_WIDTH)
        out[f"{prefix}.attn_k.weight"] = weights(kv_width, EMBEDDING_WIDTH)
        out[f"{prefix}.attn_v.weight"] = weights(kv_width, EMBEDDING_WIDTH)
        out[f"{prefix}.attn_output.weight"] = weights(EMBEDDING_WIDTH, EMBEDDING_WIDTH)
        out[f"{prefix}.ffn_norm.weight"] = np.ones(EMBEDDING_WIDTH, dtype=np.float32)
        out[f"{prefix}.ffn_gate.weight"] = weights(FEED_FORWARD, EMBEDDING_WIDTH)
        out[f"{prefix}.ffn_up.weight"] = weights(FEED_FORWARD, EMBEDDING_WIDTH)
        out[f"{prefix}.ffn_down.weight"] = weights(EMBEDDING_WIDTH, FEED_FORWARD)
    out["output_norm.weight"] = np.ones(EMBEDDING_WIDTH, dtype=np.float32)
    output = weights(n_vocab, EMBEDDING_WIDTH, scale=1.0)
    output[:, 0] = 0.0
    output[NEVER_SAMPLED, 0] = -100.0  # (see the module docstring)
    out["output.weight"] = output
    return out


def write_model(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the model to ``path`` atomically: a reader never sees half a file, and two
    processes racing to write it both succeed (the bytes are the same)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        _write(tmp, seed)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write(path: Path, seed: int) -> None:
    vocab = vocabulary()
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    writer.add_name(MODEL_NAME)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(EMBEDDING_WIDTH)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(EMBEDDING_WIDTH // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(vocab.tokens))
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(UNK)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors(seed).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    write_model(args.path, args.seed)
    print(f"{args.path}: {args.path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
