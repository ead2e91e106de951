"""Model shapes by name: the sizes a random-weight checkpoint or a model built on the meta device is given.

The real HuatuoGPT-Vision shapes (7B: Qwen2-7B + CLIP ViT-L/14-336; 34B: Yi-34B + the same CLIP) serve the
benchmarks; ``tiny`` serves smoke runs and the tests: small but not degenerate (GQA, several layers,
K-quant-friendly widths, an image a multiple of the patch size).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelShapes:
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_size: int
    vocab_size: int  # embedding rows; a random checkpoint's tokenizer may be smaller (padding is exercised)
    tokenizer_size: int  # vocabulary a random checkpoint's tokenizer is trained to
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_ffn: int
    image_size: int
    patch_size: int
    shard_bytes: int  # safetensors shard size when such a checkpoint is written


TINY = ModelShapes(
    hidden_size=256, n_layers=3, n_heads=8, n_kv_heads=2, ffn_size=512, vocab_size=1024, tokenizer_size=900,
    vision_hidden=64, vision_layers=4, vision_heads=4, vision_ffn=128, image_size=112, patch_size=14,
    shard_bytes=2 * 1024 * 1024,
)

QWEN2_7B = ModelShapes(
    hidden_size=3584, n_layers=28, n_heads=28, n_kv_heads=4, ffn_size=18944, vocab_size=152064, tokenizer_size=900,
    vision_hidden=1024, vision_layers=24, vision_heads=16, vision_ffn=4096, image_size=336, patch_size=14,
    shard_bytes=4 * 1024**3,
)

YI_34B = replace(QWEN2_7B, hidden_size=7168, n_layers=60, n_heads=56, n_kv_heads=8, ffn_size=20480, vocab_size=64000)

# name -> (text family, shapes), as training configs name them (model.shapes)
NAMED_SHAPES: dict[str, tuple[str, ModelShapes]] = {
    "tiny": ("qwen2", TINY),
    "qwen2-7b": ("qwen2", QWEN2_7B),
    "yi-34b": ("llama", YI_34B),
}
