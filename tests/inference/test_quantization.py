"""The one table of quantization types: what llama.cpp calls them, and the catalogue's use of it."""

from __future__ import annotations

import json

import gguf
import pytest

from inference import quantization
from inference.store.catalogue import CatalogueError, load_catalogue


def test_quantizer_file_types_are_llama_cpps():
    """Each quantized type's llama_ftype is the number llama.cpp (and gguf-py, which mirrors llama.h) gives it."""
    for name, kind in quantization.TYPES.items():
        if kind.llama_ftype is not None:
            assert gguf.LlamaFileType[f"MOSTLY_{name}"] == kind.llama_ftype, name
    assert [name for name in quantization.TEXT if not quantization.uses_quantizer(name)] == ["F32", "F16"]
    assert quantization.DEFAULT in quantization.TEXT and set(quantization.PROJECTOR) <= set(quantization.TEXT)


def test_smaller_types_take_fewer_bytes():
    sizes = [quantization.TYPES[name].bytes_per_weight for name in ("F32", "F16", "Q8_0", "Q5_K_M", "Q4_K_M")]
    assert sizes == sorted(sizes, reverse=True) and sizes[:2] == [4.0, 2.0]
    # Q4_K_M mixes 4.5-bit Q4_K with 6.6-bit Q6_K blocks: more than half a byte per weight, well under one.
    assert 0.5 < quantization.TYPES["Q4_K_M"].bytes_per_weight < 0.7


def test_the_catalogue_refuses_a_type_the_converter_cannot_make(tmp_path):
    model = {"name": "Tiny", "base": "Qwen2-7B", "kind": "checkpoint", "repo_id": "huatuo-test/tiny",
             "text_parameters": 1000, "vision_parameters": 100, "quantizations": ["Q4_K_M", "IQ2_XS"],
             "architecture": {"architecture": "qwen2", "context_length": 4096, "hidden_size": 64, "n_layers": 2,
                              "n_kv_heads": 2, "head_dim": 16, "image_size": 336, "image_tokens": 576}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"format": 1, "models": [model]}))
    with pytest.raises(CatalogueError, match=r"model 1 \(Tiny\): the converter cannot make 'IQ2_XS'"):
        load_catalogue(path)
    model["quantizations"] = ["Q4_K_M"]
    path.write_text(json.dumps({"format": 1, "models": [model]}))
    [entry] = load_catalogue(path)
    assert (entry.quantization, entry.mmproj_quantization) == ("Q4_K_M", "F16")
    assert entry.text_size_bytes == 610 and entry.mmproj_size_bytes == 200  # 1000 x 0.61, 100 x 2
