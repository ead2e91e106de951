"""`huatuo verify`'s quality gate: correct conversions pass, planted defects fail naming the measure.

The defects are planted in copies of correct conversions, the way a converter bug would leave them: the file
still loads in llama.cpp, its manifest describes it (hashes updated), only the numbers are wrong.
"""

import json
import shutil
import subprocess
import sys

import gguf
import numpy as np
import pytest

from conversion import quality
from inference.store.manifest import Manifest, sha256_file
from inference.store.models import InstalledModel, delete_model, read_verification

TEXT_MEASURES = ("kld_mean", "kld_p99", "same_top_token")
IMAGE_MEASURES = ("image_cosine_min", "image_cosine_mean")


def _verify_json(src, out):
    done = subprocess.run([sys.executable, "-m", "app", "verify", str(src), str(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    return done.returncode, json.loads(done.stdout)


def _failed_measures(report: dict) -> set[str]:
    return {failure.split()[0] for failure in report["failures"]}


def _copy(folder, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / "verify.json").unlink(missing_ok=True)
    return copy


def _tensor_bytes(path, name):
    """The tensor (as GGUFReader describes it) and its bytes in the file, writable in place."""
    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    return tensor, np.memmap(path, np.uint8, "r+", offset=tensor.data_offset, shape=(tensor.n_bytes,))


def _f16_rows(tensor, data):
    assert tensor.tensor_type == gguf.GGMLQuantizationType.F16
    return data.view(np.float16).reshape(int(tensor.shape[-1]), -1)  # GGUF lists the row length first


def _update_manifest(folder):
    """Describe the edited files as the converter would have: their manifest hashes match them."""
    manifest = Manifest.read(folder)
    text_path, mmproj_path = manifest.paths(folder)
    manifest.text.sha256, manifest.mmproj.sha256 = sha256_file(text_path), sha256_file(mmproj_path)
    manifest.write(folder)


# --- the measures -----------------------------------------------------------------------------------------------

def test_kld_of_known_distributions():
    reference = np.log(np.array([[0.5, 0.25, 0.25], [0.7, 0.2, 0.1]]))
    converted = np.log(np.array([[0.25, 0.5, 0.25], [0.7, 0.2, 0.1]])) + 3.0  # a shift leaves a softmax unchanged
    kld = quality.kld_per_position(reference, converted)
    assert kld[0] == pytest.approx(0.5 * np.log(2) + 0.25 * np.log(0.5))  # sum p log(p/q) by hand
    assert kld[1] == pytest.approx(0.0, abs=1e-15)
    stats = quality.text_stats([(reference, converted)])
    assert stats["same_top_token"] == 0.5 and stats["logit_positions"] == 2
    assert stats["kld_mean"] == pytest.approx(kld.mean())


def test_every_quantization_has_thresholds():
    for quant in ("F32", "F16", "Q8_0", "Q5_K_M", "Q4_K_M"):
        assert {limit.measure for limit in quality.TEXT_THRESHOLDS[quant]} == set(TEXT_MEASURES)
    for quant in ("F32", "F16", "Q8_0"):
        assert {limit.measure for limit in quality.IMAGE_THRESHOLDS[quant]} == set(IMAGE_MEASURES)
    # Fewer bits never get a stricter limit.
    order = ["F32", "F16", "Q8_0", "Q5_K_M", "Q4_K_M"]
    for measure in TEXT_MEASURES:
        values = [next(lim.value for lim in quality.TEXT_THRESHOLDS[q] if lim.measure == measure) for q in order]
        assert values == (sorted(values) if measure.startswith("kld") else sorted(values, reverse=True))


def test_a_nan_measure_fails():
    assert quality.check({"kld_mean": float("nan"), "kld_p99": 0.0, "same_top_token": 1.0,
                          "image_cosine_min": 1.0, "image_cosine_mean": 1.0}, "F16", "F16") == [
        f"kld_mean nan > {quality.TEXT_THRESHOLDS['F16'][0].value:g} (the F16 threshold)"]


# --- correct conversions pass -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour,quant", [("qwen2", "F16"), ("qwen2", "Q8_0"), ("qwen2", "Q5_K_M"),
                                           ("qwen2", "Q4_K_M"), ("llama", "Q4_K_M")])
def test_a_correct_conversion_passes(tiny_checkpoints, converted, flavour, quant):
    src, out = tiny_checkpoints(flavour), converted(flavour, "original", quant)
    code, report = _verify_json(src, out)
    assert code == 0 and report["passed"], report["failures"]
    assert report["quantization"] == quant and report["mmproj_quantization"] == "F16"
    assert report["thresholds"] == quality.thresholds_json(quant, "F16")
    assert set(report["thresholds"]) == set(TEXT_MEASURES + IMAGE_MEASURES)
    assert report["logit_positions"] > 500  # every position of the text set
    assert 0 < report["kld_mean"] <= report["kld_max"] and report["kld_p99"] <= report["kld_max"]

    # The result is kept with the model, for the model manager.
    verification = read_verification(InstalledModel(out, Manifest.read(out)))
    assert verification is not None and verification.passed and verification.quantization == quant
    assert [row.measure for row in verification.rows] == list(TEXT_MEASURES + IMAGE_MEASURES)
    for row in verification.rows:
        assert row.ok and row.value == report[row.measure]
        assert {row.bound: row.limit} == report["thresholds"][row.measure]


def test_the_record_belongs_to_the_files_it_measured(tiny_checkpoints, converted, tmp_path):
    out = _copy(converted("qwen2", "original", "Q8_0"), tmp_path)
    _verify_json(tiny_checkpoints("qwen2"), out)
    assert read_verification(InstalledModel(out, Manifest.read(out))) is not None
    _, data = _tensor_bytes(Manifest.read(out).paths(out)[0], "blk.0.attn_q.weight")
    data[:2] = 0
    data.flush()
    _update_manifest(out)  # converted again into the same folder: the old record describes other files
    assert read_verification(InstalledModel(out, Manifest.read(out))) is None
    delete_model(InstalledModel(out, Manifest.read(out)))  # and it goes with the model
    assert not out.exists()


# --- planted defects fail ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("quant", ["Q4_K_M", "Q8_0"])
def test_doubled_block_scales_fail(tiny_checkpoints, converted, tmp_path, quant):
    """One tensor's block scales multiplied by 2 (a quantizer writing a wrong scale): every weight of
    blk.1.ffn_down doubles. Q8_0 block: fp16 d + 32 int8; Q4_K super-block: fp16 d, fp16 dmin, 12 bytes of
    6-bit scales and mins, 128 bytes of 4-bit values (w = d * scale * q - dmin * min)."""
    out = _copy(converted("qwen2", "original", quant), tmp_path)
    tensor, data = _tensor_bytes(Manifest.read(out).paths(out)[0], "blk.1.ffn_down.weight")
    block, n_scales = {gguf.GGMLQuantizationType.Q8_0: (34, 1),
                       gguf.GGMLQuantizationType.Q4_K: (144, 2)}[tensor.tensor_type]
    blocks = data.reshape(-1, block)
    scales = blocks[:, :2 * n_scales].copy().view(np.float16)
    blocks[:, :2 * n_scales] = (scales * 2).view(np.uint8)
    data.flush()
    _update_manifest(out)

    code, report = _verify_json(tiny_checkpoints("qwen2"), out)
    assert code == 1 and not report["passed"]
    assert "kld_mean" in _failed_measures(report), report["failures"]
    assert _failed_measures(report) <= set(TEXT_MEASURES)  # the projector is untouched


def test_bf16_bytes_under_the_f16_type_fail(tiny_checkpoints, converted, tmp_path):
    """One tensor stored as the wrong type: the checkpoint's bfloat16 bytes copied into the F16 file without
    conversion. Both types take 2 bytes a value, so every size and offset checks out and llama.cpp loads the
    file — a converter that forgets the bf16 -> f16 step for one tensor (say, one it special-cases) ships
    exactly this; the values come out with bf16's 8 exponent bits read as f16's 5."""
    out = _copy(converted("qwen2", "original", "F16"), tmp_path)
    tensor, data = _tensor_bytes(Manifest.read(out).paths(out)[0], "blk.1.attn_q.weight")
    rows = _f16_rows(tensor, data)
    values = rows.astype(np.float32)  # exactly the checkpoint's bf16 values
    rows.view(np.uint16)[:] = (values.view(np.uint32) >> 16).astype(np.uint16)  # their bf16 bits
    data.flush()
    _update_manifest(out)

    code, report = _verify_json(tiny_checkpoints("qwen2"), out)
    assert code == 1 and not report["passed"]
    assert set(TEXT_MEASURES) <= _failed_measures(report) <= set(TEXT_MEASURES), report["failures"]


def test_shuffled_projector_rows_fail(tiny_checkpoints, converted, tmp_path):
    """An mmproj whose first projector layer (mm.0) has its rows shuffled, as a converter that permutes rows
    meant for another tensor (the attention heads' q/k permutation) would leave it: the hidden units no
    longer meet their biases nor the second layer's columns."""
    out = _copy(converted("qwen2", "original", "Q4_K_M"), tmp_path)
    tensor, data = _tensor_bytes(Manifest.read(out).paths(out)[1], "mm.0.weight")
    rows = _f16_rows(tensor, data)
    rows[:] = rows[np.random.default_rng(0).permutation(len(rows))]
    data.flush()
    _update_manifest(out)

    code, report = _verify_json(tiny_checkpoints("qwen2"), out)
    assert code == 1 and not report["passed"]
    assert _failed_measures(report) == set(IMAGE_MEASURES), report["failures"]


def test_text_output_shows_the_table_and_names_the_failure(tiny_checkpoints, converted, tmp_path):
    out = _copy(converted("qwen2", "original", "F16"), tmp_path)
    tensor, data = _tensor_bytes(Manifest.read(out).paths(out)[1], "mm.2.weight")
    rows = _f16_rows(tensor, data)
    rows[:] = rows[::-1].copy()  # the projector's output features in reverse order
    data.flush()
    _update_manifest(out)
    done = subprocess.run([sys.executable, "-m", "app", "verify", str(tiny_checkpoints("qwen2")), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for measure in TEXT_MEASURES + IMAGE_MEASURES:
        row = next(line for line in lines if line.startswith(measure + " "))
        assert row.endswith("FAIL" if measure in IMAGE_MEASURES else "ok"), row
    assert any(line.startswith("FAILED: image_cosine_min") for line in lines)
    assert lines[-1] == "FAILED"
