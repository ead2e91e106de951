"""The whole chain on tiny models: build -> convert -> verify against transformers in the real llama.cpp."""

from dataclasses import asdict

import gguf
import numpy as np
import pytest

from conversion import quality
from conversion.verify import verify
from inference.store.manifest import Manifest, sha256_file

FLAVOURS = [("qwen2", "original"), ("qwen2", "hf"), ("llama", "original"), ("llama", "hf")]


@pytest.mark.parametrize("flavour,layout", FLAVOURS)
def test_f32_matches_the_reference(tiny_checkpoints, converted, flavour, layout):
    report = verify(tiny_checkpoints(flavour, layout), converted(flavour, layout, "F32"))
    assert report.tokenization_mismatches == 0
    assert report.same_top_token == 1.0 and report.logit_positions > 500  # every position of the text set
    assert report.logits_max_abs_diff < 1e-4  # F32 weights, F32 KV cache
    assert report.kld_p99 < 1e-9
    assert report.image_tokens == 64
    assert report.image_cosine_min >= 0.999
    assert report.greedy_match and len(report.greedy_tokens_llama) >= 8
    assert report.passed, report.failures


@pytest.mark.parametrize("flavour,layout", FLAVOURS)
@pytest.mark.parametrize("quant", ["F16", "Q8_0", "Q5_K_M", "Q4_K_M"])
def test_quantized_files_load_and_answer(tiny_checkpoints, converted, flavour, layout, quant):
    out = converted(flavour, layout, quant)
    manifest = Manifest.read(out)
    text_path, mmproj_path = manifest.paths(out)
    assert manifest.text.quantization == quant and manifest.mmproj.quantization == "F16"
    assert manifest.text.sha256 == sha256_file(text_path)
    types = {t.tensor_type.name for t in gguf.GGUFReader(text_path).tensors if len(t.shape) > 1}
    expected = {"F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q5_K_M": {"Q5_K", "Q6_K"}, "Q4_K_M": {"Q4_K", "Q6_K"}}[quant]
    assert types <= expected | {"Q5_0", "Q8_0"} and types & expected, types

    report = verify(tiny_checkpoints(flavour, layout), out)
    assert report.tokenization_mismatches == 0
    assert len(report.greedy_tokens_llama) > 0  # a multimodal answer through llama.cpp
    assert report.image_cosine_min > 0.999  # the projector stays F16
    # The quality gate of the file's type (thresholds measured on these models: conversion/README.md).
    assert report.thresholds == quality.thresholds_json(quant, "F16")
    assert quality.check(asdict(report), quant, "F16") == []
    minimum_same_top = {"F16": 0.99, "Q8_0": 0.9, "Q5_K_M": 0.75, "Q4_K_M": 0.6}[quant]  # never looser than this
    assert report.same_top_token >= minimum_same_top
    print(f"{flavour}-{layout} {quant}: KLD mean {report.kld_mean:.3g} p99 {report.kld_p99:.3g}, same top token "
          f"{report.same_top_token:.3f}, image cosine min {report.image_cosine_min:.5f}")
    assert report.passed, report.failures


def test_mmproj_has_the_layout_llama_cpp_needs(converted):
    out = converted("qwen2", "original", "F32")
    reader = gguf.GGUFReader(Manifest.read(out).paths(out)[1])
    fields = reader.fields
    assert fields["clip.vision.block_count"].types == [gguf.GGUFValueType.UINT32]
    assert fields["clip.vision.feature_layer"].types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32]
    assert int(fields["clip.vision.feature_layer"].parts[-1][0]) == 3
    names = {t.name: t for t in reader.tensors}
    assert names["v.class_embd"].tensor_type == gguf.GGMLQuantizationType.F32
    assert "v.post_ln.weight" not in names and "mm.1.weight" not in names and "mm.3.weight" not in names
    assert {"mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias", "v.blk.2.attn_q.weight"} <= set(names)
    assert "v.blk.3.attn_q.weight" not in names  # the last layer is not used by the model


def test_text_gguf_carries_the_prompt_format_and_no_bos(converted):
    from inference.prompt import CHAT_TEMPLATE

    out = converted("qwen2", "hf", "F32")
    fields = gguf.GGUFReader(Manifest.read(out).paths(out)[0]).fields

    def value(key):
        f = fields[key]
        return f.contents() if hasattr(f, "contents") else bytes(f.parts[-1]).decode()

    assert value("tokenizer.chat_template") == CHAT_TEMPLATE
    assert value("tokenizer.ggml.pre") == "qwen2"
    assert bool(value("tokenizer.ggml.add_bos_token")) is False
    assert np.isclose(value("qwen2.rope.freq_base"), 1e6)


def test_mmproj_q8_0_on_request(tiny_checkpoints, tmp_path):
    from conversion.convert import convert

    out = tmp_path / "q8-projector"
    manifest = convert(tiny_checkpoints("qwen2", "original"), out, "Q8_0", mmproj_quant="Q8_0")
    assert manifest.mmproj.quantization == "Q8_0"
    types = {t.tensor_type.name for t in gguf.GGUFReader(out / manifest.mmproj.file).tensors}
    assert "Q8_0" in types and "F32" in types  # 2-D weights quantized, class embedding and norms kept
    report = verify(tiny_checkpoints("qwen2", "original"), out)
    assert report.greedy_tokens_llama and report.image_cosine_min > 0.99
