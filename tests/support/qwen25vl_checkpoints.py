"""Random-weight Qwen2.5-VL checkpoints (HuatuoGPT-Vision-7B-Qwen2.5VL's architecture), built in seconds and offline.

Two key layouts, each with the config style of the transformers that writes it:
``flat`` (transformers 4: ``visual.*`` / ``model.*`` / ``lm_head``, text fields at the top of config.json,
``rope_scaling`` with the M-RoPE sections) and ``nested`` (transformers 5: ``model.visual.*`` /
``model.language_model.*``, a ``text_config`` with ``rope_parameters``).
The tokenizer is a byte-level BPE trained at build time with Qwen's special tokens; the processor files
(preprocessor_config.json with min/max pixels, the chat template) are written as the release has them.
Needs the ``dev`` extra (torch writes the bf16 safetensors, tokenizers trains the vocabulary).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conversion.medical_texts import SENTENCES
from conversion.text_gguf import QWEN2_SPLIT_PATTERN

from .checkpoints import write_weights

LAYOUTS = ("flat", "nested")

# Qwen2.5-VL's special tokens, in the order of their ids in the real vocabulary (151643...).
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]

# Qwen2.5-VL-7B-Instruct's chat template (chat_template.json): ChatML with a default system prompt.
QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Qwen25VLShapes:
    hidden_size: int = 256
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_size: int = 512
    vocab_size: int = 1024  # embedding rows; the tokenizer is smaller, so padding is exercised
    tokenizer_size: int = 900
    mrope_section: tuple[int, int, int] = (8, 12, 12)  # sums to head_dim / 2
    vision_hidden: int = 64
    vision_depth: int = 4
    vision_heads: int = 4  # head_dim 16: divisible by 4, as llama.cpp's 2-D vision RoPE needs
    vision_ffn: int = 128
    fullatt_block_indexes: tuple[int, ...] = (1, 3)
    window_size: int = 112
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 420 * 360  # the training budget: about 192 image tokens
    shard_bytes: int = 1024 * 1024


TINY = Qwen25VLShapes()

# HuatuoGPT-Vision-7B-Qwen2.5VL's real shapes (Qwen2.5-7B text; the vision tower at transformers' defaults, which
# the released config leaves out), with the tiny tokenizer: for benchmarks on a random-weight 7B-shaped model.
QWEN25VL_7B = Qwen25VLShapes(
    hidden_size=3584, n_layers=28, n_heads=28, n_kv_heads=4, ffn_size=18944, vocab_size=152064,
    mrope_section=(16, 24, 24), vision_hidden=1280, vision_depth=32, vision_heads=16, vision_ffn=3420,
    fullatt_block_indexes=(7, 15, 23, 31), shard_bytes=2 * 1024**3,
)


def build_qwen25vl_checkpoint(out: str | Path, layout: str = "flat", shapes: Qwen25VLShapes = TINY,
                              seed: int = 0) -> Path:
    """Write a random-weight Qwen2.5-VL checkpoint folder and return its path."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = _write_tokenizer(out, shapes)
    config = _flat_config(shapes, ids) if layout == "flat" else _nested_config(shapes, ids)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
         "pad_token_id": ids["<|endoftext|>"], "do_sample": False}, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(shapes), indent=2))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN25VL_CHAT_TEMPLATE}, indent=2))
    write_weights(out, _random_tensors(np.random.default_rng(seed), shapes), lambda name: stored_name(name, layout),
                  shapes.shard_bytes)
    return out


# --- configs --------------------------------------------------------------------------------------
def _vision_config(s: Qwen25VLShapes) -> dict:
    return {
        "depth": s.vision_depth, "hidden_size": s.vision_hidden, "hidden_act": "silu",
        "intermediate_size": s.vision_ffn, "num_heads": s.vision_heads, "in_chans": 3,
        "out_hidden_size": s.hidden_size, "patch_size": s.patch_size, "spatial_merge_size": s.merge_size,
        "spatial_patch_size": s.patch_size, "window_size": s.window_size,
        "fullatt_block_indexes": list(s.fullatt_block_indexes), "tokens_per_second": 2,
        "temporal_patch_size": s.temporal_patch_size,
    }


def _text_fields(s: Qwen25VLShapes, ids: dict) -> dict:
    return {
        "hidden_size": s.hidden_size, "intermediate_size": s.ffn_size, "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads, "num_key_value_heads": s.n_kv_heads, "vocab_size": s.vocab_size,
        "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "attention_dropout": 0.0,
        "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": s.n_layers,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "tie_word_embeddings": False,
    }


def _token_fields(ids: dict) -> dict:
    return {
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }


def _flat_config(s: Qwen25VLShapes, ids: dict) -> dict:
    """config.json as transformers 4 wrote it for Qwen2.5-VL-7B-Instruct."""
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        **_text_fields(s, ids), **_token_fields(ids),
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": list(s.mrope_section)},
        "torch_dtype": "bfloat16", "transformers_version": "4.49.0", "use_cache": True,
        "vision_config": _vision_config(s),
    }


def _nested_config(s: Qwen25VLShapes, ids: dict) -> dict:
    """config.json as transformers 5 writes it."""
    text = {**_text_fields(s, ids), "model_type": "qwen2_5_vl_text", "dtype": "bfloat16",
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                "mrope_section": list(s.mrope_section)}}
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "dtype": "bfloat16",
        **_token_fields(ids), "tie_word_embeddings": False, "transformers_version": "5.0.0",
        "text_config": text, "vision_config": {**_vision_config(s), "model_type": "qwen2_5_vl_vision"},
    }


def _preprocessor_config(s: Qwen25VLShapes) -> dict:
    return {
        "min_pixels": s.min_pixels, "max_pixels": s.max_pixels,
        "patch_size": s.patch_size, "temporal_patch_size": s.temporal_patch_size, "merge_size": s.merge_size,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    }


# --- tokenizer ------------------------------------------------------------------------------------
def _write_tokenizer(out: Path, s: Qwen25VLShapes) -> dict[str, int]:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=s.tokenizer_size - len(QWEN_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [f"{a} {b}" for a in SENTENCES for b in SENTENCES[::7]] + SENTENCES
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(QWEN_SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768)
    fast.save_pretrained(out)
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(tokenizer_class="Qwen2Tokenizer", bos_token=None, add_bos_token=False,
               chat_template=QWEN25VL_CHAT_TEMPLATE)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    return {t: tok.token_to_id(t) for t in QWEN_SPECIALS}


# --- weights --------------------------------------------------------------------------------------
def _random_tensors(rng: np.random.Generator, s: Qwen25VLShapes) -> Iterator[tuple[str, np.ndarray]]:
    """(name in the flat layout, float32 array). Scaled so activations stay O(1) and logits are decisive."""

    def linear(rows: int, cols: int, gain: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * (gain / np.sqrt(cols))).astype(np.float32)

    def vector(n: int, centre: float = 0.0, spread: float = 0.05) -> np.ndarray:
        return (centre + spread * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    hd = s.hidden_size // s.n_heads
    yield "model.embed_tokens.weight", rng.standard_normal((s.vocab_size, s.hidden_size), dtype=np.float32)
    for i in range(s.n_layers):
        p = f"model.layers.{i}."
        yield p + "self_attn.q_proj.weight", linear(s.n_heads * hd, s.hidden_size)
        yield p + "self_attn.q_proj.bias", vector(s.n_heads * hd, spread=0.1)
        yield p + "self_attn.k_proj.weight", linear(s.n_kv_heads * hd, s.hidden_size)
        yield p + "self_attn.k_proj.bias", vector(s.n_kv_heads * hd, spread=0.1)
        yield p + "self_attn.v_proj.weight", linear(s.n_kv_heads * hd, s.hidden_size)
        yield p + "self_attn.v_proj.bias", vector(s.n_kv_heads * hd, spread=0.1)
        yield p + "self_attn.o_proj.weight", linear(s.hidden_size, s.n_heads * hd)
        yield p + "mlp.gate_proj.weight", linear(s.ffn_size, s.hidden_size)
        yield p + "mlp.up_proj.weight", linear(s.ffn_size, s.hidden_size)
        yield p + "mlp.down_proj.weight", linear(s.hidden_size, s.ffn_size)
        yield p + "input_layernorm.weight", vector(s.hidden_size, 1.0)
        yield p + "post_attention_layernorm.weight", vector(s.hidden_size, 1.0)
    yield "model.norm.weight", vector(s.hidden_size, 1.0)
    yield "lm_head.weight", linear(s.vocab_size, s.hidden_size, gain=3.0)

    vh, ps, tp = s.vision_hidden, s.patch_size, s.temporal_patch_size
    yield "visual.patch_embed.proj.weight", (
        rng.standard_normal((vh, 3, tp, ps, ps), dtype=np.float32) / (ps * np.sqrt(3 * tp))
    ).astype(np.float32)
    for i in range(s.vision_depth):
        p = f"visual.blocks.{i}."
        yield p + "norm1.weight", vector(vh, 1.0)
        yield p + "norm2.weight", vector(vh, 1.0)
        yield p + "attn.qkv.weight", linear(3 * vh, vh)
        yield p + "attn.qkv.bias", vector(3 * vh)
        yield p + "attn.proj.weight", linear(vh, vh)
        yield p + "attn.proj.bias", vector(vh)
        yield p + "mlp.gate_proj.weight", linear(s.vision_ffn, vh)
        yield p + "mlp.gate_proj.bias", vector(s.vision_ffn)
        yield p + "mlp.up_proj.weight", linear(s.vision_ffn, vh)
        yield p + "mlp.up_proj.bias", vector(s.vision_ffn)
        yield p + "mlp.down_proj.weight", linear(vh, s.vision_ffn)
        yield p + "mlp.down_proj.bias", vector(vh)
    merged = vh * s.merge_size**2
    yield "visual.merger.ln_q.weight", vector(vh, 1.0)
    yield "visual.merger.mlp.0.weight", linear(merged, merged)
    yield "visual.merger.mlp.0.bias", vector(merged)
    yield "visual.merger.mlp.2.weight", linear(s.hidden_size, merged, gain=2.0)
    yield "visual.merger.mlp.2.bias", vector(s.hidden_size)


def stored_name(flat_name: str, layout: str) -> str:
    """A tensor's name in a checkpoint of `layout`, from its name in the flat layout."""
    if layout == "flat":
        return flat_name
    if flat_name.startswith("visual."):
        return "model." + flat_name
    if flat_name.startswith("model."):
        return "model.language_model." + flat_name[len("model."):]
    return flat_name  # lm_head
