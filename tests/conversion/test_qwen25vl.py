"""Qwen2.5-VL (HuatuoGPT-Vision-7B-Qwen2.5VL): reading both key layouts, the GGUF pair llama.cpp needs, clear
refusals, and the converted files in the real llama.cpp against transformers."""

import json
import shutil

import gguf
import numpy as np
import pytest

from conversion.convert import convert
from conversion.errors import ConversionError
from conversion.families import open_checkpoint
from conversion.qwen25vl import VISION_DEFAULTS, Qwen25VLCheckpoint
from conversion.qwen25vl_verify import verify_qwen25vl
from inference import prompt
from inference.imageprep import smart_resize
from inference.store.gguf_check import ModelFileError, check_folder, check_pair
from inference.store.manifest import Manifest
from tests.support.qwen25vl_checkpoints import (
    LAYOUTS,
    QWEN25VL_7B,
    QWEN25VL_CHAT_TEMPLATE,
    _vision_config,
    build_qwen25vl_checkpoint,
)


@pytest.fixture(scope="module")
def qwen_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen25vl")
    built = {}

    def get(layout="flat"):
        if layout not in built:
            built[layout] = build_qwen25vl_checkpoint(root / f"tiny-qwen25vl-{layout}", layout)
        return built[layout]

    return get


@pytest.fixture(scope="module")
def qwen_converted(qwen_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen25vl-converted")
    done = {}

    def get(layout="flat", quant="F32"):
        if (layout, quant) not in done:
            out = root / f"{layout}-{quant}"
            convert(qwen_checkpoint(layout), out, quant)
            done[layout, quant] = out
        return done[layout, quant]

    return get


def _copy(src, tmp_path, name="bad"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _edit_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def _assert_no_output(out):
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [n for n in leftovers if n.endswith((".gguf", ".part")) or n == "manifest.json"], leftovers


# --- reading ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_both_key_layouts_are_detected_and_read_alike(qwen_checkpoint, layout):
    ckpt = open_checkpoint(qwen_checkpoint(layout))
    assert isinstance(ckpt, Qwen25VLCheckpoint) and ckpt.layout == layout and ckpt.FAMILY == "qwen2.5-vl"
    other = Qwen25VLCheckpoint(qwen_checkpoint("nested" if layout == "flat" else "flat"))
    assert set(ckpt.tensors) == set(other.tensors) and ckpt.text == other.text and ckpt.vision == other.vision
    assert ckpt.text.family == "qwen2vl" and ckpt.mrope_section == (8, 12, 12, 0)
    v = ckpt.vision
    assert (v.depth, v.n_heads, v.window_size, v.merge_size, v.fullatt_block_indexes) == (4, 4, 112, 2, (1, 3))
    assert v.n_wa_pattern == 2 and v.out_hidden_size == ckpt.text.hidden_size
    assert (v.min_pixels, v.max_pixels, v.max_image_tokens) == (56 * 56, 420 * 360, 192)
    assert ckpt.chat_template == QWEN25VL_CHAT_TEMPLATE
    assert {"vision.patch_embed.proj.weight", "vision.blocks.3.attn.qkv.bias", "vision.merger.mlp.2.weight",
            "text.model.layers.1.self_attn.q_proj.bias", "text.lm_head.weight"} <= set(ckpt.tensors)


def test_the_defaults_for_omitted_vision_fields_are_transformers_own():
    from transformers import Qwen2_5_VLVisionConfig

    reference = Qwen2_5_VLVisionConfig()
    for key, value in VISION_DEFAULTS.items():
        expected = getattr(reference, key)
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key


def test_the_7b_shaped_benchmark_checkpoint_has_the_vision_tower_the_release_leaves_to_the_defaults():
    written = _vision_config(QWEN25VL_7B)
    written["in_channels"] = written.pop("in_chans")  # the name the released config.json uses
    assert {key: written[key] for key in VISION_DEFAULTS} == VISION_DEFAULTS
    assert QWEN25VL_7B.hidden_size == VISION_DEFAULTS["out_hidden_size"] == 3584


def test_a_config_that_omits_vision_fields_is_read_with_the_defaults(qwen_checkpoint, tmp_path):
    path = _copy(qwen_checkpoint("flat"), tmp_path)
    # As the released 7B config.json has it: a few fields only (sizes come from the tensors).
    minimal = {"hidden_size": 64, "in_chans": 3, "spatial_patch_size": 14, "tokens_per_second": 2,
               "fullatt_block_indexes": [1, 3]}
    _edit_config(path, lambda c: c.update(vision_config=minimal))
    v = Qwen25VLCheckpoint(path).vision
    assert (v.depth, v.n_heads, v.ffn_size, v.out_hidden_size, v.window_size) == (4, 16, 128, 256, 112)
    # Without its full-attention layers, transformers' default [7, 15, 23, 31] does not fit 4 layers.
    _edit_config(path, lambda c: c["vision_config"].pop("fullatt_block_indexes"))
    with pytest.raises(ConversionError, match=r"\[7, 15, 23, 31\] of 4 are not evenly spaced"):
        Qwen25VLCheckpoint(path)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c.update(model_type="qwen2_vl", architectures=["Qwen2VLForConditionalGeneration"]), "Qwen2-VL"),
    (lambda c: c.update(model_type="qwen3_vl", architectures=["Qwen3VLForConditionalGeneration"]), "Qwen3-VL"),
    (lambda c: c.pop("vision_config"), "no vision_config"),
    (lambda c: c["vision_config"].update(fullatt_block_indexes=[0, 3]), r"\[0, 3\] of 4 are not evenly spaced"),
    (lambda c: c["vision_config"].update(window_size=56), "attention window 56 px"),
    (lambda c: c["vision_config"].update(hidden_act="gelu"), "uses 'gelu'"),
    (lambda c: c["vision_config"].update(depth=5), "vision_config.depth is 5 but the tensors say 4"),
], ids=["qwen2-vl", "qwen3-vl", "no-vision-config", "uneven-full-attention", "window", "activation", "depth"])
def test_unsupported_checkpoints_are_refused_before_any_output(qwen_checkpoint, tmp_path, edit, message):
    path = _copy(qwen_checkpoint("flat"), tmp_path)
    _edit_config(path, edit)
    with pytest.raises(ConversionError, match=message):
        convert(path, tmp_path / "out", "Q8_0")
    _assert_no_output(tmp_path / "out")


def test_a_truncated_shard_is_refused_before_any_output(qwen_checkpoint, tmp_path):
    path = _copy(qwen_checkpoint("nested"), tmp_path)
    shard = sorted(path.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(ConversionError, match=f"{shard.name} is truncated"):
        convert(path, tmp_path / "out", "F16")
    _assert_no_output(tmp_path / "out")


def test_missing_vision_tensors_are_named(qwen_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    path = _copy(qwen_checkpoint("nested"), tmp_path)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    name = "model.visual.blocks.2.mlp.up_proj.weight"
    shard = path / index["weight_map"].pop(name)
    tensors = load_file(shard)
    del tensors[name]
    save_file(tensors, shard, metadata={"format": "pt"})
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConversionError, match="vision.blocks.2.mlp.up_proj.weight"):
        convert(path, tmp_path / "out", "F16")
    _assert_no_output(tmp_path / "out")


# --- the files ----------------------------------------------------------------------------------------
def _value(fields, key):
    return fields[key].contents()


def test_mmproj_has_the_keys_and_tensors_llama_cpp_reads(qwen_checkpoint, qwen_converted):
    out = qwen_converted("nested", "F32")
    manifest = Manifest.read(out)
    assert manifest.family == "qwen2.5-vl" and manifest.text_architecture == "qwen2vl"
    assert (manifest.image_tokens, manifest.image_min_pixels, manifest.image_max_pixels) == (192, 3136, 151200)
    reader = gguf.GGUFReader(manifest.paths(out)[1])
    fields = reader.fields
    assert _value(fields, "clip.projector_type") == "qwen2.5vl_merger"
    assert _value(fields, "clip.use_silu") is True and _value(fields, "clip.has_vision_encoder") is True
    u32 = [gguf.GGUFValueType.UINT32]
    for key, expected in [("n_wa_pattern", 2), ("block_count", 4), ("embedding_length", 64),
                          ("feed_forward_length", 128), ("attention.head_count", 4), ("patch_size", 14),
                          ("projection_dim", 256), ("spatial_merge_size", 2)]:
        assert fields[f"clip.vision.{key}"].types == u32 and _value(fields, f"clip.vision.{key}") == expected, key
    assert np.isclose(_value(fields, "clip.vision.attention.layer_norm_epsilon"), 1e-6)

    tensors = {t.name: t for t in reader.tensors}
    assert "v.class_embd" not in tensors and "v.patch_embd.bias" not in tensors and "mm.1.weight" not in tensors
    ckpt = Qwen25VLCheckpoint(qwen_checkpoint("nested"))
    kernel = ckpt.tensors["vision.patch_embed.proj.weight"].read()
    for suffix, plane in (("", 0), (".1", 1)):
        data = np.asarray(tensors[f"v.patch_embd.weight{suffix}"].data)
        assert np.array_equal(data.reshape(64, 3, 14, 14), kernel[:, :, plane])
    qkv = ckpt.tensors["vision.blocks.3.attn.qkv.weight"].read()
    qkv_bias = ckpt.tensors["vision.blocks.3.attn.qkv.bias"].read()
    for third, short in enumerate(("attn_q", "attn_k", "attn_v")):
        rows = slice(third * 64, (third + 1) * 64)
        assert np.array_equal(np.asarray(tensors[f"v.blk.3.{short}.weight"].data).reshape(64, 64), qkv[rows])
        assert np.array_equal(np.asarray(tensors[f"v.blk.3.{short}.bias"].data), qkv_bias[rows])
    assert {"v.blk.0.ffn_gate.weight", "v.blk.0.ln1.weight", "v.post_ln.weight", "mm.0.bias", "mm.2.weight"} \
        <= set(tensors)


def test_text_gguf_carries_m_rope_and_the_release_chat_template(qwen_checkpoint, qwen_converted):
    out = qwen_converted("flat", "F32")
    fields = gguf.GGUFReader(Manifest.read(out).paths(out)[0]).fields
    assert _value(fields, "general.architecture") == "qwen2vl"
    assert fields["qwen2vl.rope.dimension_sections"].types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32]
    assert _value(fields, "qwen2vl.rope.dimension_sections") == [8, 12, 12, 0]
    assert np.isclose(_value(fields, "qwen2vl.rope.freq_base"), 1e6)
    assert _value(fields, "tokenizer.chat_template") == QWEN25VL_CHAT_TEMPLATE
    assert _value(fields, "tokenizer.ggml.add_bos_token") is False
    config = json.loads((qwen_checkpoint("flat") / "config.json").read_text())
    assert _value(fields, "tokenizer.ggml.eos_token_id") == config["eos_token_id"]  # <|im_end|>


def test_the_pair_passes_the_file_check_and_a_mismatched_pair_is_refused(qwen_converted, converted):
    info = check_folder(qwen_converted("flat", "F32"))
    assert info.architecture == "qwen2vl" and info.projector == "qwen2.5vl_merger" and info.image_tokens == 192
    qwen_text, qwen_mmproj = Manifest.read(qwen_converted("flat", "F32")).paths(qwen_converted("flat", "F32"))
    llava = converted("qwen2", "original", "F32")
    llava_text, llava_mmproj = Manifest.read(llava).paths(llava)
    with pytest.raises(ModelFileError, match="does not belong with the 'qwen2vl' text model"):
        check_pair(qwen_text, llava_mmproj)
    with pytest.raises(ModelFileError, match="'qwen2.5vl_merger' projector, which does not belong with the 'qwen2'"):
        check_pair(llava_text, qwen_mmproj)


# --- preprocessing and prompt ---------------------------------------------------------------------------
def test_smart_resize_is_transformers_own():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    for height, width in [(224, 224), (196, 280), (700, 900), (30, 30), (1000, 56), (3000, 2000), (511, 513)]:
        for budget in [(3136, 151200), (3136, 28 * 28 * 1280), (28 * 28 * 64, 28 * 28 * 256)]:
            assert smart_resize(height, width, 28, *budget) == reference(height, width, 28, *budget)


def test_the_release_chat_template_renders_as_transformers_does(qwen_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen_checkpoint("flat"))
    turns = [prompt.Turn("Describe the findings.", n_images=1, answer="A normal chest radiograph."),
             prompt.Turn("请比较这两张图像。", n_images=2)]
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the findings."}]},
        {"role": "assistant", "content": "A normal chest radiograph."},
        {"role": "user",
         "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "请比较这两张图像。"}]},
    ]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    rendered = prompt.render_chat_template(QWEN25VL_CHAT_TEMPLATE, turns)
    assert rendered == expected
    assert rendered.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert rendered.count("<|vision_start|><|image_pad|><|vision_end|>") == 3


# --- parity with transformers in the real llama.cpp ----------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_f32_matches_transformers(qwen_checkpoint, qwen_converted, layout):
    report = verify_qwen25vl(qwen_checkpoint(layout), qwen_converted(layout, "F32"))
    assert report.tokenization_mismatches == 0
    assert report.top1_agreement == 1.0
    assert report.logits_max_abs_diff < 1e-4  # F32 weights, F32 KV cache
    square, partial, large = report.images
    assert (square.model_size, square.tokens, square.n_pos) == ((224, 224), 64, 8)  # four whole windows
    assert (partial.model_size, partial.tokens, partial.n_pos) == ((280, 196), 70, 10)  # partial windows
    assert large.model_size == (420, 336) and large.tokens == 180 <= 192  # shrunk into the pixel budget
    for image in report.images:
        assert image.pixels_max_abs_diff == 0.0  # our preprocessing is transformers' processor, pixel for pixel
        assert image.cosine_min >= 0.999, image
    assert report.greedy_match and len(report.greedy_tokens_llama) >= 8
    # A two-image follow-up continued from llama.cpp's KV cache: positions advance by each image's n_pos.
    assert report.follow_up_match and len(report.follow_up_tokens_llama) >= 8
    assert report.passed, report.failures


@pytest.mark.parametrize("quant", ["F16", "Q8_0", "Q4_K_M"])
def test_quantized_files_load_and_answer(qwen_checkpoint, qwen_converted, quant):
    out = qwen_converted("flat", quant)
    manifest = Manifest.read(out)
    assert manifest.text.quantization == quant and manifest.mmproj.quantization == "F16"
    text_path, mmproj_path = manifest.paths(out)
    types = {t.tensor_type.name for t in gguf.GGUFReader(text_path).tensors if len(t.shape) > 1}
    expected = {"F16": {"F16"}, "Q8_0": {"Q8_0"}, "Q4_K_M": {"Q4_K", "Q6_K"}}[quant]
    assert types <= expected | {"Q5_0", "Q8_0"} and types & expected, types
    check_folder(out)

    report = verify_qwen25vl(qwen_checkpoint("flat"), out)
    assert report.tokenization_mismatches == 0
    assert len(report.greedy_tokens_llama) > 0
    assert report.image_cosine_min > 0.999  # the projector stays F16
    minimum_top1 = {"F16": 0.99, "Q8_0": 0.9, "Q4_K_M": 0.0}[quant]  # random tiny models have near-ties
    assert report.top1_agreement >= minimum_top1
    assert report.passed, report.failures


def test_mmproj_q8_0_on_request(qwen_checkpoint, tmp_path):
    out = tmp_path / "q8-projector"
    manifest = convert(qwen_checkpoint("flat"), out, "Q8_0", mmproj_quant="Q8_0")
    tensors = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out / manifest.mmproj.file).tensors}
    assert tensors["v.blk.0.attn_q.weight"] == "Q8_0" and tensors["v.post_ln.weight"] == "F32"
    assert tensors["v.patch_embd.weight"] == "F16"  # the patch kernels feed a convolution: never quantized
    report = verify_qwen25vl(qwen_checkpoint("flat"), out)
    assert report.greedy_tokens_llama and report.image_cosine_min > 0.99
