"""The Qwen2.5-VL reference: transformers' Qwen2_5_VLForConditionalGeneration with the checkpoint's own weights,
and transformers' image processor for its pixels.

Needs the `dev` extra (torch, transformers). Built from the canonical tensors of `Qwen25VLCheckpoint`, so both
key layouts give the same reference, and no network or hub access is involved.
"""

from __future__ import annotations

from .qwen25vl import Qwen25VLCheckpoint
from .reference import load_weights


def load_reference(ckpt: Qwen25VLCheckpoint):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    t, v = ckpt.text, ckpt.vision
    text_config = {
        "hidden_size": t.hidden_size, "intermediate_size": t.ffn_size, "num_hidden_layers": t.n_layers,
        "num_attention_heads": t.n_heads, "num_key_value_heads": t.n_kv_heads, "vocab_size": t.vocab_size,
        "rms_norm_eps": t.rms_norm_eps, "max_position_embeddings": t.context_length, "hidden_act": "silu",
        "use_sliding_window": False, "tie_word_embeddings": t.tie_embeddings,
        "bos_token_id": None, "eos_token_id": ckpt.eos_token_id(), "pad_token_id": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta,
                            "mrope_section": [n for n in ckpt.mrope_section if n]},
    }
    vision_config = {
        "depth": v.depth, "hidden_size": v.hidden_size, "hidden_act": "silu", "intermediate_size": v.ffn_size,
        "num_heads": v.n_heads, "in_channels": 3, "patch_size": v.patch_size, "spatial_merge_size": v.merge_size,
        "temporal_patch_size": v.temporal_patch_size, "window_size": v.window_size,
        "out_hidden_size": v.out_hidden_size, "fullatt_block_indexes": list(v.fullatt_block_indexes),
    }
    tokens = {key: ckpt.config[key] for key in ("image_token_id", "video_token_id", "vision_start_token_id",
                                                "vision_end_token_id") if key in ckpt.config}
    config = Qwen2_5_VLConfig(text_config=text_config, vision_config=vision_config,
                              tie_word_embeddings=t.tie_embeddings, **tokens)
    config._attn_implementation = "eager"
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    load_weights(model, ckpt, _reference_name,
                 allowed_missing=lambda name: t.tie_embeddings and name == "lm_head.weight")
    if t.tie_embeddings:
        model.tie_weights()
    return model.float()


def _reference_name(canonical: str) -> str | None:
    if canonical.startswith("vision."):
        return "model.visual." + canonical[len("vision."):]
    if canonical.startswith("text.model."):
        return "model.language_model." + canonical[len("text.model."):]
    if canonical == "text.lm_head.weight":
        return "lm_head.weight"
    return None


def image_processor(ckpt: Qwen25VLCheckpoint):
    """transformers' Qwen2-VL image processor (the PIL one: resize as the model was trained) with the
    release's pixel budget."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    v = ckpt.vision
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": v.min_pixels, "longest_edge": v.max_pixels}, patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size, merge_size=v.merge_size,
        image_mean=list(v.image_mean), image_std=list(v.image_std),
    )


def processed_pixels(ckpt: Qwen25VLCheckpoint, image):
    """(pixel_values, image_grid_thw) as transformers' processor makes them from an original PIL image."""
    processed = image_processor(ckpt)(images=[image.convert("RGB")], return_tensors="pt")
    return processed["pixel_values"], processed["image_grid_thw"]


def image_features(model, ckpt: Qwen25VLCheckpoint, image):
    """The merger output for one original PIL image: (n_tokens, hidden), tokens in raster order of the
    merged grid (as llama.cpp returns them)."""
    import torch

    pixel_values, grid_thw = processed_pixels(ckpt, image)
    with torch.no_grad():
        features = model.model.visual(pixel_values, grid_thw=grid_thw)
    features = getattr(features, "pooler_output", features)
    return features.reshape(-1, features.shape[-1])
