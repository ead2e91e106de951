"""Reading checkpoints: both layouts, canonical names, and clear errors for bad input."""

import json
import shutil

import numpy as np
import pytest

from conversion.checkpoint import Checkpoint, stored_name
from conversion.convert import convert
from conversion.errors import ConversionError
from conversion.safetensors_reader import bf16_to_f32


@pytest.mark.parametrize(
    "flavour,layout", [("qwen2", "original"), ("qwen2", "hf"), ("llama", "original"), ("llama", "hf")]
)
def test_both_layouts_read_to_the_same_specs(tiny_checkpoints, flavour, layout):
    ckpt = Checkpoint(tiny_checkpoints(flavour, layout))
    assert ckpt.layout == layout
    assert ckpt.text.family == flavour
    assert ckpt.text.n_kv_heads < ckpt.text.n_heads  # GQA
    assert ckpt.vision.n_layers == 4 and ckpt.vision.n_layers_used == 3  # hidden_states[-2]
    assert ckpt.vision.n_image_tokens == (112 // 14) ** 2
    assert ckpt.vision.projector_dim == ckpt.text.hidden_size
    assert {
        "projector.0.weight",
        "projector.2.bias",
        "vision.embeddings.class_embedding",
        "text.model.embed_tokens.weight",
        "text.lm_head.weight",
    } <= set(ckpt.tensors)


def test_bf16_is_read_exactly_without_torch(tiny_checkpoints):
    import torch
    from safetensors.torch import load_file

    path = tiny_checkpoints("qwen2", "original")
    ckpt = Checkpoint(path)
    stored = ckpt.tensors["text.model.layers.0.self_attn.q_proj.weight"]
    expected = load_file(stored.path)[stored.name].to(torch.float32).numpy()
    assert np.array_equal(stored.read(), expected)
    blocks = list(stored.row_blocks(max_bytes=4096, multiple_of=32))
    assert len(blocks) > 1 and all(b.shape[0] % 32 == 0 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), expected)
    assert bf16_to_f32(np.array([0x3F80], dtype=np.uint16))[0] == 1.0


def test_detection_ignores_the_folder_name(tiny_checkpoints, tmp_path):
    renamed = tmp_path / "some-renamed-folder"
    shutil.copytree(tiny_checkpoints("qwen2", "hf"), renamed)
    assert Checkpoint(renamed).layout == "hf"


def _copy(src, tmp_path, name="bad"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _assert_no_output(out):
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [n for n in leftovers if n.endswith((".gguf", ".part")) or n == "manifest.json"], leftovers


def test_unknown_architecture_is_named(tiny_checkpoints, tmp_path):
    path = _copy(tiny_checkpoints("qwen2", "original"), tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["model_type"] = "llava_mistral"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="llava_mistral"):
        convert(path, tmp_path / "out", "F16")
    _assert_no_output(tmp_path / "out")


def test_config_that_contradicts_the_tensors_is_named(tiny_checkpoints, tmp_path):
    path = _copy(tiny_checkpoints("qwen2", "original"), tmp_path)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="does not match the tensor names"):
        Checkpoint(path)


def test_missing_shard_is_named(tiny_checkpoints, tmp_path):
    path = _copy(tiny_checkpoints("qwen2", "original"), tmp_path)
    (path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ConversionError, match="model-00002-of-00003.safetensors.*missing"):
        convert(path, tmp_path / "out", "F16")
    _assert_no_output(tmp_path / "out")


def test_truncated_safetensors_is_named(tiny_checkpoints, tmp_path):
    path = _copy(tiny_checkpoints("llama", "hf"), tmp_path)
    shard = path / "model-00003-of-00003.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ConversionError, match="model-00003-of-00003.safetensors is truncated"):
        convert(path, tmp_path / "out", "Q8_0")
    _assert_no_output(tmp_path / "out")


def test_projector_width_mismatch_is_explained(tiny_checkpoints, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    path = _copy(tiny_checkpoints("qwen2", "original"), tmp_path)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    for name in ("projector.2.weight", "projector.2.bias"):
        stored = stored_name(name, "original")
        shard = path / index["weight_map"][stored]
        tensors = load_file(shard)
        shape = list(tensors[stored].shape)
        shape[0] = 128
        tensors[stored] = torch.zeros(shape, dtype=torch.bfloat16)
        save_file(tensors, shard, metadata={"format": "pt"})
    with pytest.raises(ConversionError, match="projector outputs width 128.*hidden size is 256"):
        convert(path, tmp_path / "out", "F16")
    _assert_no_output(tmp_path / "out")


def test_full_disk_is_refused_before_writing(tiny_checkpoints, tmp_path, monkeypatch):
    import shutil as shutil_module

    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr("conversion.convert.shutil.disk_usage", lambda _path: usage._replace(free=1000))
    with pytest.raises(ConversionError, match="not enough disk space"):
        convert(tiny_checkpoints("qwen2", "original"), tmp_path / "out", "Q4_K_M")
    _assert_no_output(tmp_path / "out")
