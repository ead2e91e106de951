"""Qwen2.5-VL as llama.cpp files: the text model as a `qwen2vl` GGUF (M-RoPE) and the vision tower as a
`clip` GGUF with projector type `qwen2.5vl_merger`.

The mmproj follows what llama.cpp's qwen2vl graph reads: the Conv3d patch kernel split along its temporal
axis into `v.patch_embd.weight` / `v.patch_embd.weight.1` (the graph sums two conv2d over the same image),
the fused q/k/v projection split in thirds (no Q/K permutation: the vision RoPE is NEOX-style), RMS norms as
`ln1`/`ln2`/`v.post_ln`, the gated MLP as `ffn_gate`/`ffn_up`/`ffn_down`, the merger as `mm.0`/`mm.2`, and the
required `n_wa_pattern`. Every key has the exact type clip.cpp reads.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from . import gguf_stream, text_gguf
from .gguf_stream import F32, PlannedTensor
from .qwen25vl import Qwen25VLCheckpoint

PROJECTOR_TYPE = "qwen2.5vl_merger"
MMPROJ_IMAGE_SIZE = 560  # what upstream's converter writes; this projector sizes images by pixel budget instead

_BLOCK_TENSORS = {
    "norm1": "ln1",
    "norm2": "ln2",
    "attn.proj": "attn_out",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_text_gguf(ckpt: Qwen25VLCheckpoint, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
    spec = ckpt.text
    writer = text_gguf.new_writer(spec, name or ckpt.path.name, weight_type)
    writer.add_rope_dimension_sections(list(ckpt.mrope_section))
    text_gguf.add_vocab(writer, ckpt.path, spec, ckpt.eos_token_id(), ckpt.chat_template)
    gguf_stream.write(path, writer, text_gguf.plan_tensors(ckpt.tensors, spec, weight_type, ckpt.path), on_bytes)


def write_mmproj_gguf(ckpt: Qwen25VLCheckpoint, path: Path, weight_type, on_bytes=None,
                      name: str | None = None) -> None:
    v = ckpt.vision
    writer = gguf.GGUFWriter(None, "clip")
    writer.add_name((name or ckpt.path.name) + " vision projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", PROJECTOR_TYPE)
    writer.add_bool("clip.use_silu", True)
    writer.add_uint32("clip.vision.image_size", MMPROJ_IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", v.patch_size)
    writer.add_uint32("clip.vision.embedding_length", v.hidden_size)
    writer.add_uint32("clip.vision.feed_forward_length", v.ffn_size)
    writer.add_uint32("clip.vision.block_count", v.depth)
    writer.add_uint32("clip.vision.attention.head_count", v.n_heads)
    writer.add_uint32("clip.vision.projection_dim", v.out_hidden_size)
    writer.add_uint32("clip.vision.spatial_merge_size", v.merge_size)
    writer.add_uint32("clip.vision.n_wa_pattern", v.n_wa_pattern)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", v.layer_norm_eps)
    writer.add_array("clip.vision.image_mean", [float(x) for x in v.image_mean])
    writer.add_array("clip.vision.image_std", [float(x) for x in v.image_std])
    writer.add_uint32("general.file_type", 0 if weight_type == F32 else 1)
    gguf_stream.write(path, writer, _plan(ckpt, weight_type), on_bytes)


def _temporal_slice(index: int):
    # Row blocks of the (out, in, t, h, w) kernel keep whole output channels; take one temporal plane of each.
    return lambda block: block[:, :, index]


def _plan(ckpt: Qwen25VLCheckpoint, weight_type) -> list[PlannedTensor]:
    t, v = ckpt.tensors, ckpt.vision

    def planned(name: str, source, force_f32: bool = False) -> PlannedTensor:
        dtype = F32 if force_f32 or len(source.shape) < 2 else weight_type
        return PlannedTensor(name, source, dtype)

    kernel = t["vision.patch_embed.proj.weight"]
    out_channels, in_channels, _, height, width = kernel.shape
    plane = (out_channels, in_channels, height, width)
    out = [
        PlannedTensor("v.patch_embd.weight", kernel, weight_type, _temporal_slice(0), shape=plane),
        PlannedTensor("v.patch_embd.weight.1", kernel, weight_type, _temporal_slice(1), shape=plane),
    ]
    for i in range(v.depth):
        p = f"vision.blocks.{i}."
        for kind in ("weight", "bias"):
            qkv = t[p + f"attn.qkv.{kind}"]
            for third, short in enumerate(("attn_q", "attn_k", "attn_v")):
                out.append(planned(f"v.blk.{i}.{short}.{kind}", qkv.rows(third * v.hidden_size,
                                                                             (third + 1) * v.hidden_size)))
        for hf, short in _BLOCK_TENSORS.items():
            for kind in ("weight", "bias"):
                if p + f"{hf}.{kind}" in t:  # the RMS norms have a weight only
                    out.append(planned(f"v.blk.{i}.{short}.{kind}", t[p + f"{hf}.{kind}"]))
    out.append(planned("v.post_ln.weight", t["vision.merger.ln_q.weight"]))
    for i in (0, 2):
        for kind in ("weight", "bias"):
            out.append(planned(f"mm.{i}.{kind}", t[f"vision.merger.mlp.{i}.{kind}"]))
    return out
