"""Random-weight HuatuoGPT-Vision checkpoints in the real on-disk formats, built in seconds and offline.

Used by the tests of every package and by the benchmarks. Two text flavours: ``qwen2`` (byte-level BPE
tokenizer, like the 7B) and ``llama`` (SentencePiece tokenizer, like the Yi-based 34B); two layouts:
``original`` (the released HuatuoGPT-Vision code) and ``hf`` (transformers' LlavaForConditionalGeneration).
Needs the ``dev`` extra (torch writes the bf16 safetensors, tokenizers/sentencepiece train the vocabularies).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from conversion.checkpoint import stored_name
from conversion.medical_texts import SENTENCES
from conversion.shapes import TINY, ModelShapes
from conversion.text_gguf import QWEN2_SPLIT_PATTERN

QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_CHATML = (  # what the real 7B tokenizer_config carries; wrong for this model, kept to prove we ignore it
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' +"
    " '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_checkpoint(
    out: str | Path, flavour: str = "qwen2", layout: str = "original", shapes: ModelShapes = TINY, seed: int = 0
) -> Path:
    """Write a random-weight checkpoint folder and return its path."""
    if flavour not in ("qwen2", "llama") or layout not in ("original", "hf"):
        raise ValueError(f"unknown flavour/layout {flavour}/{layout}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    tokenizer_info = _write_tokenizer(out, flavour, layout, shapes)
    if flavour == "llama":  # Yi: embedding rows = vocabulary (plus <image> in the -hf layout)
        shapes = replace(shapes, vocab_size=tokenizer_info["n_tokens"])
    text_cfg = _text_config(flavour, shapes, tokenizer_info)
    vision_cfg = _vision_config(shapes)
    if layout == "original":
        config = {
            **text_cfg,
            "architectures": ["LlavaQwen2ForCausalLM" if flavour == "qwen2" else "LlavaLlamaForCausalLM"],
            "model_type": "llava_qwen2" if flavour == "qwen2" else "llava_llama",
            "mm_hidden_size": shapes.vision_hidden,
            "mm_projector_type": "mlp2x_gelu",
            "mm_vision_select_feature": "patch",
            "mm_vision_select_layer": -2,
            "mm_vision_tower": "./vit/clip_vit_large_patch14_336",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            "image_aspect_ratio": "pad",
            "tokenizer_model_max_length": 4096,
            "tokenizer_padding_side": "right",
            "use_mm_proj": True,
            "torch_dtype": "bfloat16",
        }
        vit = out / "vit" / "clip_vit_large_patch14_336"
        vit.mkdir(parents=True, exist_ok=True)
        (vit / "config.json").write_text(
            json.dumps(
                {
                    "architectures": ["CLIPModel"],
                    "model_type": "clip",
                    "projection_dim": 768,
                    "vision_config": vision_cfg,
                    "text_config": {"model_type": "clip_text_model"},
                },
                indent=2,
            )
        )
        (vit / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(shapes), indent=2))
    else:
        config = {
            "architectures": ["LlavaForConditionalGeneration"],
            "model_type": "llava",
            "image_token_index": tokenizer_info["image_token_id"],
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "multimodal_projector_bias": True,
            "image_seq_length": (shapes.image_size // shapes.patch_size) ** 2,
            "text_config": {**text_cfg, "architectures": None},
            "vision_config": vision_cfg,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        }
        (out / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(shapes), indent=2))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": text_cfg["bos_token_id"],
                "eos_token_id": text_cfg["eos_token_id"],
                "do_sample": False,
            },
            indent=2,
        )
    )
    write_weights(out, _random_tensors(rng, flavour, shapes), lambda name: stored_name(name, layout),
                  shapes.shard_bytes)
    return out


# --- configs --------------------------------------------------------------------------------------
def _text_config(flavour: str, s: ModelShapes, tok: dict) -> dict:
    cfg = {
        "model_type": flavour,
        "hidden_size": s.hidden_size,
        "intermediate_size": s.ffn_size,
        "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads,
        "num_key_value_heads": s.n_kv_heads,
        "vocab_size": s.vocab_size,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6 if flavour == "qwen2" else 1e-5,
        "rope_theta": 1e6 if flavour == "qwen2" else 5e6,
        "tie_word_embeddings": False,
        "bos_token_id": tok["bos_token_id"],
        "eos_token_id": tok["eos_token_id"],
    }
    if flavour == "qwen2":
        cfg.update(use_sliding_window=False, sliding_window=None, max_window_layers=s.n_layers)
    else:
        cfg.update(attention_bias=False, pretraining_tp=1, rope_scaling=None)
    return cfg


def _vision_config(s: ModelShapes) -> dict:
    return {
        "model_type": "clip_vision_model",
        "hidden_size": s.vision_hidden,
        "intermediate_size": s.vision_ffn,
        "num_hidden_layers": s.vision_layers,
        "num_attention_heads": s.vision_heads,
        "image_size": s.image_size,
        "patch_size": s.patch_size,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }


def _preprocessor_config(s: ModelShapes) -> dict:
    return {
        "crop_size": {"height": s.image_size, "width": s.image_size},
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "do_convert_rgb": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "CLIPImageProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": s.image_size},
    }


# --- tokenizers -----------------------------------------------------------------------------------
def _corpus() -> list[str]:
    # Enough text for a few hundred merges, mixing both languages.
    return [f"{a} {b}" for a in SENTENCES for b in SENTENCES[::7]] + SENTENCES


def _write_tokenizer(out: Path, flavour: str, layout: str, s: ModelShapes) -> dict:
    if flavour == "qwen2":
        return _write_bpe_tokenizer(out, layout, s)
    return _write_sentencepiece_tokenizer(out, layout, s)


def _write_bpe_tokenizer(out: Path, layout: str, s: ModelShapes) -> dict:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = QWEN2_SPECIALS + (["<image>"] if layout == "hf" else [])
    trainer = trainers.BpeTrainer(
        vocab_size=s.tokenizer_size - len(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=4096
    )
    fast.save_pretrained(out)
    _edit_tokenizer_config(
        out, tokenizer_class="Qwen2Tokenizer", bos_token=None, add_bos_token=False, chat_template=QWEN_CHATML
    )
    eos = tok.token_to_id("<|endoftext|>")
    return {"bos_token_id": eos, "eos_token_id": eos, "image_token_id": tok.token_to_id("<image>")}


def _write_sentencepiece_tokenizer(out: Path, layout: str, s: ModelShapes) -> dict:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text("\n".join(_corpus()), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(Path(tmp) / "sp"),
            vocab_size=s.tokenizer_size,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=1.0,
            split_digits=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            allow_whitespace_only_pieces=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            bos_piece="<|startoftext|>",
            eos_piece="<|endoftext|>",
            minloglevel=2,
            num_threads=1,
        )
        shutil.copy(Path(tmp) / "sp.model", out / "tokenizer.model")
    # The Yi tokenizer files: the SentencePiece model and a config; transformers builds the rest.
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<unk>",
                "add_bos_token": False,
                "add_eos_token": False,
                "legacy": True,
                "model_max_length": 4096,
            },
            indent=2,
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    if layout == "hf":  # the -hf conversion adds <image> as a special token after the SentencePiece vocabulary
        tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.save_pretrained(out)
    _edit_tokenizer_config(out, tokenizer_class="LlamaTokenizer", add_bos_token=False, add_eos_token=False)
    image_id = tokenizer.convert_tokens_to_ids("<image>") if layout == "hf" else None
    return {"bos_token_id": 1, "eos_token_id": 2, "image_token_id": image_id, "n_tokens": len(tokenizer)}


def _edit_tokenizer_config(out: Path, **fields) -> None:
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(fields)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


# --- weights --------------------------------------------------------------------------------------
def _random_tensors(rng: np.random.Generator, flavour: str, s: ModelShapes) -> Iterator[tuple[str, np.ndarray]]:
    """(canonical name, float32 array), one at a time so that big shapes never sit in memory together.
    Scaled so activations stay O(1) and logits are decisive."""

    def linear(rows: int, cols: int, gain: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * (gain / np.sqrt(cols))).astype(np.float32)

    def vector(n: int, centre: float = 0.0, spread: float = 0.05) -> np.ndarray:
        return (centre + spread * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    hd = s.hidden_size // s.n_heads
    yield "text.model.embed_tokens.weight", rng.standard_normal((s.vocab_size, s.hidden_size), dtype=np.float32)
    for i in range(s.n_layers):
        p = f"text.model.layers.{i}."
        yield p + "self_attn.q_proj.weight", linear(s.n_heads * hd, s.hidden_size)
        yield p + "self_attn.k_proj.weight", linear(s.n_kv_heads * hd, s.hidden_size)
        yield p + "self_attn.v_proj.weight", linear(s.n_kv_heads * hd, s.hidden_size)
        if flavour == "qwen2":
            yield p + "self_attn.q_proj.bias", vector(s.n_heads * hd, spread=0.1)
            yield p + "self_attn.k_proj.bias", vector(s.n_kv_heads * hd, spread=0.1)
            yield p + "self_attn.v_proj.bias", vector(s.n_kv_heads * hd, spread=0.1)
        yield p + "self_attn.o_proj.weight", linear(s.hidden_size, s.n_heads * hd)
        yield p + "mlp.gate_proj.weight", linear(s.ffn_size, s.hidden_size)
        yield p + "mlp.up_proj.weight", linear(s.ffn_size, s.hidden_size)
        yield p + "mlp.down_proj.weight", linear(s.hidden_size, s.ffn_size)
        yield p + "input_layernorm.weight", vector(s.hidden_size, 1.0)
        yield p + "post_attention_layernorm.weight", vector(s.hidden_size, 1.0)
    yield "text.model.norm.weight", vector(s.hidden_size, 1.0)
    yield "text.lm_head.weight", linear(s.vocab_size, s.hidden_size, gain=3.0)

    vh, n_pos = s.vision_hidden, (s.image_size // s.patch_size) ** 2 + 1
    yield "vision.embeddings.class_embedding", vector(vh, spread=0.5)
    yield "vision.embeddings.patch_embedding.weight", (
        rng.standard_normal((vh, 3, s.patch_size, s.patch_size), dtype=np.float32) / (s.patch_size * np.sqrt(3))
    ).astype(np.float32)
    yield "vision.embeddings.position_embedding.weight", rng.standard_normal((n_pos, vh), dtype=np.float32) * 0.5
    yield "vision.pre_layrnorm.weight", vector(vh, 1.0)
    yield "vision.pre_layrnorm.bias", vector(vh)
    for i in range(s.vision_layers):
        p = f"vision.encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield p + f"self_attn.{proj}.weight", linear(vh, vh)
            yield p + f"self_attn.{proj}.bias", vector(vh)
        for norm in ("layer_norm1", "layer_norm2"):
            yield p + f"{norm}.weight", vector(vh, 1.0)
            yield p + f"{norm}.bias", vector(vh)
        yield p + "mlp.fc1.weight", linear(s.vision_ffn, vh)
        yield p + "mlp.fc1.bias", vector(s.vision_ffn)
        yield p + "mlp.fc2.weight", linear(vh, s.vision_ffn)
        yield p + "mlp.fc2.bias", vector(vh)
    yield "vision.post_layernorm.weight", vector(vh, 1.0)
    yield "vision.post_layernorm.bias", vector(vh)
    yield "projector.0.weight", linear(s.hidden_size, vh)
    yield "projector.0.bias", vector(s.hidden_size)
    yield "projector.2.weight", linear(s.hidden_size, s.hidden_size, gain=2.0)
    yield "projector.2.bias", vector(s.hidden_size)


def write_weights(out: Path, tensors: Iterator[tuple[str, np.ndarray]], stored: Callable[[str], str],
                  shard_bytes: int) -> None:
    """Shards written as they fill, so memory holds at most one shard (a 7B-shaped checkpoint stays flat); each
    tensor saved under `stored(canonical name)`, in bfloat16, with the index transformers reads."""
    import torch
    from safetensors.torch import save_file

    shards: list[tuple[str, list[str]]] = []
    pending: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush() -> None:
        name = f"shard-{len(shards) + 1}.tmp"
        save_file(pending, out / name, metadata={"format": "pt"})
        shards.append((name, list(pending)))
        pending.clear()

    for name, array in tensors:
        if pending and size + array.size * 2 > shard_bytes:
            flush()
            size = 0
        pending[stored(name)] = torch.from_numpy(array).to(torch.bfloat16)
        size += array.size * 2
        total += array.size * 2
        del array  # before the next tensor is drawn: a 7B embedding is 2 GB in float32
    flush()
    weight_map = {}
    for i, (tmp_name, keys) in enumerate(shards):
        shard_name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        (out / tmp_name).rename(out / shard_name)
        weight_map.update(dict.fromkeys(keys, shard_name))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def tiny_model(work: Path, quant: str = "F16", n_layers: int = 4) -> Path:
    """A converted tiny random model folder (checkpoint built and converted under `work`): for benchmarks and
    screenshots that need a model without shipping one."""
    from conversion.convert import convert

    src = build_checkpoint(Path(work) / "tiny", "qwen2", "original", replace(TINY, n_layers=n_layers))
    out = Path(work) / f"tiny-gguf-{quant}"
    convert(src, out, quant)
    return out
