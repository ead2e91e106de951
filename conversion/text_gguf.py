"""The language model as a llama.cpp GGUF: `qwen2` (7B), `llama` (Yi-based 34B) or `qwen2vl` (Qwen2.5-VL).

The LLaVA family writes its file here; other families reuse the writer, tensor plan and vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np

from inference.prompt import CHAT_TEMPLATE

from . import gguf_stream
from .checkpoint import Checkpoint, TextSpec
from .errors import ConversionError
from .gguf_stream import F32, PlannedTensor

QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
ARCH = {"qwen2": gguf.MODEL_ARCH.QWEN2, "llama": gguf.MODEL_ARCH.LLAMA, "qwen2vl": gguf.MODEL_ARCH.QWEN2VL}
BYTE_LEVEL_BPE = ("qwen2", "qwen2vl")  # architectures whose vocabulary is Qwen2's byte-level BPE


def permute_for_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF Llama keeps rotary halves apart; llama.cpp's `llama` graph expects them interleaved."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_text_gguf(ckpt: Checkpoint, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
    """weight_type: F32, F16 or BF16 for 2-D weights; norms and biases stay F32."""
    writer = new_writer(ckpt.text, name or ckpt.path.name, weight_type)
    add_vocab(writer, ckpt.path, ckpt.text, _eos_id(ckpt), CHAT_TEMPLATE)
    gguf_stream.write(path, writer, plan_tensors(ckpt.tensors, ckpt.text, weight_type, ckpt.path), on_bytes)


def new_writer(spec: TextSpec, name: str, weight_type) -> gguf.GGUFWriter:
    """A writer with the language model's hyperparameters (the keys every text architecture shares)."""
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[ARCH[spec.family]])
    writer.add_name(name)
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.hidden_size)
    writer.add_block_count(spec.n_layers)
    writer.add_feed_forward_length(spec.ffn_size)
    writer.add_head_count(spec.n_heads)
    writer.add_head_count_kv(spec.n_kv_heads)
    writer.add_rope_freq_base(spec.rope_theta)  # must be written: llama.cpp's default (10000) is wrong
    writer.add_layer_norm_rms_eps(spec.rms_norm_eps)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_file_type(
        {
            F32: gguf.LlamaFileType.ALL_F32,
            gguf_stream.F16: gguf.LlamaFileType.MOSTLY_F16,
            gguf_stream.BF16: gguf.LlamaFileType.MOSTLY_BF16,
        }[weight_type]
    )
    return writer


def plan_tensors(tensors: dict, spec: TextSpec, weight_type, where: Path) -> list[PlannedTensor]:
    """The language model's tensors (canonical ``text.*`` names) under their GGUF names."""
    names = gguf.TensorNameMap(ARCH[spec.family], spec.n_layers)
    planned = []
    for canonical, source in tensors.items():
        if not canonical.startswith("text."):
            continue
        hf_name = canonical[len("text.") :]
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConversionError(f"{where}: the tensor {hf_name} has no place in a {spec.family} GGUF")
        transform, multiple = None, 1
        if spec.family == "llama" and hf_name.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
            heads = spec.n_heads if "q_proj" in hf_name else spec.n_kv_heads
            transform = _per_head_permutation(spec.head_dim)
            multiple = spec.head_dim
            assert source.shape[0] == heads * spec.head_dim
        dtype = weight_type if len(source.shape) >= 2 else F32
        planned.append(PlannedTensor(gguf_name, source, dtype, transform, multiple))
    return planned


def _per_head_permutation(head_dim: int):
    # Blocks hold whole heads, so each block is permuted on its own.
    return lambda block: permute_for_rope(block, block.shape[0] // head_dim)


# --- vocabulary -----------------------------------------------------------------------------------
def add_vocab(writer: gguf.GGUFWriter, folder: Path, spec: TextSpec, eos: int | None, chat_template: str) -> None:
    """The tokenizer of `folder`, no BOS, the given end-of-generation token and chat template."""
    n_vocab = spec.vocab_size
    bpe = spec.family in BYTE_LEVEL_BPE
    if bpe:
        tokens, types, scores = _bpe_vocab(folder, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2")
    else:
        tokens, types, scores, add_space_prefix = _sentencepiece_vocab(folder, n_vocab)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_add_space_prefix(add_space_prefix)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if scores is not None:
        writer.add_token_scores(scores)
    special = gguf.SpecialVocab(folder, load_merges=bpe, n_vocab=n_vocab)
    if bpe and not special.merges:
        raise ConversionError(f"{folder}: tokenizer.json has no BPE merges")
    # The model is prompted without BOS, and with its own format (for HuatuoGPT-Vision's LLaVA models never the
    # tokenizer_config's ChatML).
    special.add_special_token["bos"] = False
    special.add_special_token["eos"] = False
    special.chat_template = chat_template
    if eos is not None:
        special.special_token_ids["eos"] = eos
    special.add_to_gguf(writer, quiet=True)


def _eos_id(ckpt: Checkpoint) -> int | None:
    cfg = ckpt.config.get("text_config", ckpt.config) if ckpt.layout == "hf" else ckpt.config
    eos = cfg.get("eos_token_id")
    return eos[0] if isinstance(eos, list) else eos


def _read_tokenizer_json(folder: Path) -> dict:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ConversionError(f"{folder}: tokenizer.json is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def _bpe_vocab(folder: Path, n_vocab: int):
    data = _read_tokenizer_json(folder)
    if data["model"].get("type") != "BPE":
        raise ConversionError(f"{folder}: a Qwen2 model needs a BPE tokenizer, found {data['model'].get('type')}")
    if QWEN2_SPLIT_PATTERN not in json.dumps(data.get("pre_tokenizer"), ensure_ascii=False).replace("\\\\", "\\"):
        raise ConversionError(f"{folder}: the tokenizer's pre-tokenizer is not Qwen2's; it would tokenize differently")
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    kinds: dict[int, int] = {}
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        kinds[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    by_id = {i: t for t, i in vocab.items()}
    if max(by_id) >= n_vocab:
        raise ConversionError(f"{folder}: the tokenizer has ids up to {max(by_id)} but the model only {n_vocab} rows")
    tokens, types = [], []
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(kinds.get(i, gguf.TokenType.NORMAL))
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    return tokens, types, None


def _sentencepiece_vocab(folder: Path, n_vocab: int):
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise ConversionError(
            "converting a Llama-family (Yi) model needs sentencepiece: pip install 'huatuo-vision-desktop[convert]'"
        ) from None
    path = folder / "tokenizer.model"
    if not path.is_file():
        raise ConversionError(f"{folder}: tokenizer.model (SentencePiece) is missing")
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    tokens = [p.piece for p in proto.pieces]
    scores = [p.score for p in proto.pieces]
    types = [int(p.type) for p in proto.pieces]  # SentencePiece's piece types use llama.cpp's numbering
    for added in (
        _read_tokenizer_json(folder).get("added_tokens", []) if (folder / "tokenizer.json").is_file() else []
    ):
        i = added["id"]
        if i < len(tokens):
            continue
        while len(tokens) < i:
            tokens.append(f"[PAD{len(tokens)}]"), scores.append(-1000.0), types.append(gguf.TokenType.UNUSED)
        tokens.append(added["content"]), scores.append(0.0)
        types.append(gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED)
    if len(tokens) > n_vocab:
        raise ConversionError(f"{folder}: the tokenizer has {len(tokens)} tokens but the model only {n_vocab} rows")
    while len(tokens) < n_vocab:
        tokens.append(f"[PAD{len(tokens)}]"), scores.append(-1000.0), types.append(gguf.TokenType.UNUSED)
    return tokens, types, scores, bool(proto.normalizer_spec.add_dummy_prefix)
