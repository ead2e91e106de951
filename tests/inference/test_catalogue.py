"""The model catalogue: what it offers, its size estimates, and fit verdicts before anything is downloaded."""

from __future__ import annotations

import json

import psutil
import pytest

from inference.hardware import kv_cache_bytes
from inference.store.catalogue import CatalogueError, fit_label, load_catalogue
from inference.store.gguf_check import check_folder
from inference.store.manifest import Manifest
from tests.support.fake_hub import gguf_catalogue_model


def test_the_shipped_catalogue_offers_the_three_models_at_four_quantizations():
    entries = load_catalogue()
    names = ("HuatuoGPT-Vision-7B", "HuatuoGPT-Vision-34B", "HuatuoGPT-Vision-7B-Qwen2.5VL")
    quants = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")
    assert {(e.name, e.quantization) for e in entries} == {(name, q) for name in names for q in quants}
    # No ready GGUF pair is published: every model is converted here from its released checkpoint.
    assert {e.repo_id for e in entries} == {"FreedomIntelligence/HuatuoGPT-Vision-7B",
                                            "FreedomIntelligence/HuatuoGPT-Vision-34B",
                                            "FreedomIntelligence/HuatuoGPT-Vision-7B-Qwen2.5VL"}
    assert all(e.kind == "checkpoint" and e.size_is_estimate for e in entries)
    llava = [e for e in entries if e.family == "llava"]
    assert {e.name for e in llava} == set(names[:2]) and all(len(e.revision) == 40 for e in llava)
    assert {e.base for e in entries} == {"Qwen2-7B", "Yi-1.5-34B", "Qwen2.5-VL-7B-Instruct"}
    assert len({e.id for e in entries}) == len(entries)


def test_the_qwen25vl_entry_is_converted_with_its_chat_template_and_sized_for_its_own_context():
    qwen = [e for e in load_catalogue() if e.name == "HuatuoGPT-Vision-7B-Qwen2.5VL"]
    assert {e.family for e in qwen} == {"qwen2.5-vl"} and {e.architecture["architecture"] for e in qwen} == {"qwen2vl"}
    # conversion reads the release's chat template (chat_template.json, or chat_template.jinja in newer releases)
    assert all("*.jinja" in e.allow_patterns and "*.json" in e.allow_patterns for e in qwen)
    q4 = next(e for e in qwen if e.quantization == "Q4_K_M")
    pair = q4.pair_info()
    assert pair.family == "qwen2.5-vl" and pair.context_length == 8192  # the engine's default context for it
    assert 4.4e9 < q4.text_size_bytes < 5.0e9  # the same Qwen2.5-7B language model size as Qwen2-7B's
    # The 32-layer vision tower and merger (~0.68 B parameters) at F16; the bf16 checkpoint is ~16.6 GB.
    assert 1.2e9 < q4.mmproj_size_bytes < 1.5e9 and 16e9 < q4.download_bytes < 17e9
    assert q4.ram_needed_bytes > q4.size_bytes + kv_cache_bytes(pair, 8192)
    fit = fit_label(q4, bandwidth_gb_s=20.0)
    assert fit.verdict in ("fits", "slow", "won't fit") and fit.ram_needed_bytes == q4.ram_needed_bytes


def test_size_estimates_are_plausible():
    by_id = {e.id: e for e in load_catalogue()}
    seven = [by_id[f"HuatuoGPT-Vision-7B-{q}"] for q in ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")]
    assert [e.text_size_bytes for e in seven] == sorted(e.text_size_bytes for e in seven)
    # Published Q4_K_M / F16 GGUFs of the Qwen2-7B base are 4.7 / 15.2 GB; CLIP-L + projector at F16 ~0.6 GB.
    assert 4.4e9 < seven[0].text_size_bytes < 5.0e9 and 14.8e9 < seven[3].text_size_bytes < 15.6e9
    assert 0.55e9 < seven[0].mmproj_size_bytes < 0.7e9
    assert 15e9 < seven[0].download_bytes < 17e9  # the bf16 checkpoint (4 shards, about 15.9 GB)
    q4_34b = by_id["HuatuoGPT-Vision-34B-Q4_K_M"]
    assert 20e9 < q4_34b.text_size_bytes < 23e9
    for entry in by_id.values():
        pair = entry.pair_info()
        assert entry.ram_needed_bytes > entry.size_bytes + kv_cache_bytes(pair, 4096)


def test_fit_labels_follow_this_machines_memory():
    by_id = {e.id: e for e in load_catalogue()}
    biggest = by_id["HuatuoGPT-Vision-34B-F16"]
    fit = fit_label(biggest, bandwidth_gb_s=20.0)
    assert fit.verdict in ("fits", "slow", "won't fit") and fit.reasons
    assert fit.ram_needed_bytes == biggest.ram_needed_bytes
    if psutil.virtual_memory().total < biggest.ram_needed_bytes:
        assert fit.verdict == "won't fit" and "GiB" in fit.reasons[0]
    # At 20 GB/s a 69 GB model manages well under 3 tokens/s, so it is slow at best.
    assert fit.verdict != "fits"


def _gguf_catalogue(tmp_path, folder, **overrides):
    model = {**gguf_catalogue_model(folder, "huatuo-test/tiny-gguf", prefix=""), **overrides}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"format": 1, "bytes_per_weight": {}, "models": [model]}))
    return path


def test_a_gguf_entry_describes_its_pair_exactly(tmp_path, converted):
    folder = converted("qwen2", "original", "F32")
    [entry] = load_catalogue(_gguf_catalogue(tmp_path, folder))
    assert entry.kind == "gguf" and not entry.size_is_estimate and entry.id == "Tiny-F32"
    pair = check_folder(folder)
    info = entry.pair_info()
    for key in ("architecture", "context_length", "hidden_size", "n_layers", "n_kv_heads", "head_dim",
                "image_size", "image_tokens", "text_bytes", "mmproj_bytes"):
        assert getattr(info, key) == getattr(pair, key), key
    assert entry.text_sha256 == Manifest.read(folder).text.sha256
    assert fit_label(entry, bandwidth_gb_s=20.0).verdict == "fits"


def test_malformed_catalogues_are_named(tmp_path, converted):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(CatalogueError, match="broken.json: not valid JSON"):
        load_catalogue(broken)
    with pytest.raises(CatalogueError, match="cannot be read"):
        load_catalogue(tmp_path / "missing.json")
    folder = converted("qwen2", "original", "F32")
    with pytest.raises(CatalogueError, match=r"model 1 \(Tiny\).*kind 'zip'"):
        load_catalogue(_gguf_catalogue(tmp_path, folder, kind="zip"))
    bad_hash = json.loads(_gguf_catalogue(tmp_path, folder).read_text())
    bad_hash["models"][0]["files"]["F32"]["text"]["sha256"] = "abc"
    (tmp_path / "bad.json").write_text(json.dumps(bad_hash))
    with pytest.raises(CatalogueError, match="'abc' is not a SHA-256"):
        load_catalogue(tmp_path / "bad.json")
    no_format = tmp_path / "old.json"
    no_format.write_text(json.dumps({"models": []}))
    with pytest.raises(CatalogueError, match="unknown catalogue format None"):
        load_catalogue(no_format)
