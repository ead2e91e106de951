"""The vision tower and projector as a llama.cpp `clip` GGUF (projector type `mlp`).

Only the layers the model uses are written (0..L-2 for select layer -2), with `block_count` = that number
and `feature_layer` = [that number] as an INT32 array, so that llama.cpp runs exactly those layers.
No post-layernorm (LLaVA reads the features before it) and only `mm.0` / `mm.2` (an `mm.3` would switch
llama.cpp to another projector). Every key is written with the exact type clip.cpp reads: a uint32 key
stored as int32 aborts the process.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from inference.imageprep import CLIP_MEAN, CLIP_STD

from . import gguf_stream
from .checkpoint import Checkpoint
from .gguf_stream import F16, F32, PlannedTensor

_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.out_proj": "attn_out",
    "layer_norm1": "ln1",
    "layer_norm2": "ln2",
    "mlp.fc1": "ffn_up",
    "mlp.fc2": "ffn_down",
}


def write_mmproj_gguf(ckpt: Checkpoint, path: Path, weight_type=F16, on_bytes=None, name: str | None = None) -> None:
    v = ckpt.vision
    writer = gguf.GGUFWriter(None, "clip")
    writer.add_name((name or ckpt.path.name) + " vision projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", v.image_size)
    writer.add_uint32("clip.vision.patch_size", v.patch_size)
    writer.add_uint32("clip.vision.embedding_length", v.hidden_size)
    writer.add_uint32("clip.vision.feed_forward_length", v.ffn_size)
    writer.add_uint32("clip.vision.block_count", v.n_layers_used)
    writer.add_uint32("clip.vision.attention.head_count", v.n_heads)
    writer.add_uint32("clip.vision.projection_dim", v.projector_dim)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", v.layer_norm_eps)
    writer.add_array("clip.vision.image_mean", list(CLIP_MEAN))
    writer.add_array("clip.vision.image_std", list(CLIP_STD))
    writer.add_key_value("clip.vision.feature_layer", [v.n_layers_used], gguf.GGUFValueType.ARRAY,
                         sub_type=gguf.GGUFValueType.INT32)
    writer.add_uint32("general.file_type", 0 if weight_type == F32 else 1)
    gguf_stream.write(path, writer, _plan(ckpt, weight_type), on_bytes)


def _plan(ckpt: Checkpoint, weight_type) -> list[PlannedTensor]:
    t = ckpt.tensors

    def planned(name: str, canonical: str, force_f32: bool = False) -> PlannedTensor:
        source = t[canonical]
        dtype = F32 if force_f32 or len(source.shape) < 2 else weight_type
        return PlannedTensor(name, source, dtype)

    out = [
        planned("v.patch_embd.weight", "vision.embeddings.patch_embedding.weight"),
        planned("v.class_embd", "vision.embeddings.class_embedding", force_f32=True),  # F32 required
        planned("v.position_embd.weight", "vision.embeddings.position_embedding.weight", force_f32=True),
        planned("v.pre_ln.weight", "vision.pre_layrnorm.weight"),
        planned("v.pre_ln.bias", "vision.pre_layrnorm.bias"),
    ]
    for i in range(ckpt.vision.n_layers_used):
        for hf, short in _LAYER_TENSORS.items():
            for kind in ("weight", "bias"):
                out.append(planned(f"v.blk.{i}.{short}.{kind}", f"vision.encoder.layers.{i}.{hf}.{kind}"))
    for i in (0, 2):
        for kind in ("weight", "bias"):
            out.append(planned(f"mm.{i}.{kind}", f"projector.{i}.{kind}"))
    return out
