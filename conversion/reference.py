"""The reference: transformers' LlavaForConditionalGeneration with the checkpoint's own weights.

Needs the `dev` extra (torch, transformers). Built from the canonical tensors of `Checkpoint`, so both
layouts give the same reference, and no network or hub access is involved.
"""

from __future__ import annotations

import numpy as np

from .checkpoint import Checkpoint


def load_reference(ckpt: Checkpoint, image_token_id: int | None = None):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, Qwen2Config

    t, v = ckpt.text, ckpt.vision
    text_cls = Qwen2Config if t.family == "qwen2" else LlamaConfig
    text_config = text_cls(
        hidden_size=t.hidden_size, intermediate_size=t.ffn_size, num_hidden_layers=t.n_layers,
        num_attention_heads=t.n_heads, num_key_value_heads=t.n_kv_heads, vocab_size=t.vocab_size,
        rms_norm_eps=t.rms_norm_eps, rope_theta=t.rope_theta, max_position_embeddings=max(4096, t.context_length),
        tie_word_embeddings=t.tie_embeddings, hidden_act="silu",
        **({"attention_bias": False} if t.family == "llama" else {"use_sliding_window": False}),
    )
    vision_config = CLIPVisionConfig(
        hidden_size=v.hidden_size, intermediate_size=v.ffn_size, num_hidden_layers=v.n_layers,
        num_attention_heads=v.n_heads, image_size=v.image_size, patch_size=v.patch_size,
        layer_norm_eps=v.layer_norm_eps, hidden_act="quick_gelu",
    )
    select_layer = v.n_layers_used - v.n_layers - 1  # -2 for the released models
    config = LlavaConfig(
        text_config=text_config, vision_config=vision_config, vision_feature_layer=select_layer,
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
        image_token_index=image_token_id if image_token_id is not None else t.vocab_size - 1,
        multimodal_projector_bias=True, tie_word_embeddings=t.tie_embeddings,
    )
    config._attn_implementation = "eager"
    model = LlavaForConditionalGeneration(config).eval()
    load_weights(model, ckpt, _reference_name, allowed_missing=lambda name: name.endswith("position_ids"))
    return model.float()


def load_weights(model, ckpt, reference_name, allowed_missing) -> None:
    """The checkpoint's tensors, by canonical name, into a transformers model (`reference_name` maps each canonical
    name to the model's, None to skip it); any other missing or unexpected weight is an error."""
    import torch

    state = {}
    for name, tensor in ckpt.tensors.items():
        target = reference_name(name)
        if target is not None:
            state[target] = torch.from_numpy(np.ascontiguousarray(tensor.read()))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not allowed_missing(m)]
    if missing or unexpected:
        raise RuntimeError(f"reference model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _reference_name(canonical: str) -> str | None:
    if canonical.startswith("projector."):
        index, kind = canonical.split(".")[1:]
        return f"model.multi_modal_projector.linear_{1 if index == '0' else 2}.{kind}"
    if canonical.startswith("vision."):
        return "model.vision_tower." + canonical[len("vision."):]
    if canonical.startswith("text.model."):
        return "model.language_model." + canonical[len("text.model."):]
    if canonical == "text.lm_head.weight":
        return "lm_head.weight"
    return None


def image_features(model, image):
    """The projector output for one prepared (square, model-sized) PIL image: (n_tokens, hidden)."""
    import torch

    from inference.imageprep import normalise

    with torch.no_grad():
        features = model.model.get_image_features(pixel_values=torch.from_numpy(normalise(image))[None])
    features = getattr(features, "pooler_output", features)
    if isinstance(features, (list, tuple)):
        features = features[0]
    return features.reshape(-1, features.shape[-1])


def greedy_reference(
    model, pieces, tokenize, max_new_tokens: int, eos_ids, repetition_penalty: float = 1.0
) -> list[int]:
    """Greedy generation in transformers from prompt pieces: text (tokenized with `tokenize`), token ids,
    or a prepared PIL image (its projected features are spliced in, as the official code does). Like the
    official code it passes only embeddings, so a repetition penalty sees the generated tokens alone."""
    import torch

    embed = model.get_input_embeddings()
    with torch.no_grad():
        parts = [
            embed(torch.tensor(tokenize(p) if isinstance(p, str) else p)) if isinstance(p, (str, list))
            else image_features(model, p)
            for p in pieces
        ]
        inputs = torch.cat(parts)[None]
        output = model.generate(
            inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long),
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=list(eos_ids), pad_token_id=eos_ids[0],
            repetition_penalty=repetition_penalty,
        )
    generated = [int(t) for t in output[0]]
    while generated and generated[-1] in eos_ids:
        generated.pop()
    return generated
