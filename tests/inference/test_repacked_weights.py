"""The text model's weights, repacked for this CPU, kept beside it: the first load writes them, later loads map them,
and what the model computes is the same bit for bit (native/llama-cpp/repacked-weights-cache.patch,
inference/repacked_weights.py). The tiny Q4_K_M model has Q4_K weights that llama.cpp repacks on an AVX2 CPU."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inference import repacked_weights
from inference.engine import Engine, EngineSettings
from inference.native import NativeModel
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.store.models import delete_model, installed_models
from inference.store.verify_files import verify_files

GREEDY = SamplingSettings.greedy_decoding(12)
PROMPT = [5, 17, 99, 230, 7, 64, 300, 12]


@pytest.fixture
def model_folder(converted, tmp_path):
    """A private copy of the tiny Q4_K_M model (its folder gets the repacked-weights file)."""
    folder = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "Q4_K_M"), folder)
    return folder


def _text_path(folder: Path) -> Path:
    return next(p for p in folder.glob("*.gguf") if "mmproj" not in p.name)


def _logits(text_path: Path, kept: Path | None) -> tuple[np.ndarray, str | None]:
    model = NativeModel(text_path, None, n_ctx=64, n_threads=2, repacked_weights=kept)
    try:
        model.decode_tokens(PROMPT, 0, all_logits=True)
        return np.stack([model.logits(i) for i in range(len(PROMPT))]), model.repacked_weights
    finally:
        model.close()


def test_the_first_load_writes_the_repacked_weights_and_later_loads_compute_the_same_from_them(model_folder):
    text = _text_path(model_folder)
    kept = repacked_weights.weights_path(text, None, repacked_weights.build_key())
    repacked_now, _ = _logits(text, None)
    first, first_outcome = _logits(text, kept)
    assert first_outcome == "written" and kept.stat().st_size > 0
    mapped, mapped_outcome = _logits(text, kept)
    assert mapped_outcome == "mapped"
    assert np.array_equal(first, repacked_now) and np.array_equal(mapped, repacked_now)
    assert not list(model_folder.glob("*.partial"))


def test_a_kept_file_of_the_wrong_size_is_repacked_and_written_again(model_folder):
    text = _text_path(model_folder)
    kept = repacked_weights.weights_path(text, None, repacked_weights.build_key())
    expected, _ = _logits(text, kept)
    whole = kept.stat().st_size
    with open(kept, "r+b") as f:
        f.truncate(whole // 2)
    logits, outcome = _logits(text, kept)
    assert outcome == "written" and kept.stat().st_size == whole
    assert np.array_equal(logits, expected)


def test_a_file_of_another_build_or_model_is_removed_when_the_model_loads(model_folder):
    text = _text_path(model_folder)
    stale = text.with_name(f"{text.stem}{repacked_weights.MARK}0123456789abcdef{repacked_weights.SUFFIX}")
    stale.write_bytes(b"\0" * 4096)
    kept = repacked_weights.weights_path(text, None, repacked_weights.build_key())
    half_written = Path(f"{kept}.4242.partial")  # left by a process that ended while writing it
    half_written.write_bytes(b"\0" * 10)
    assert repacked_weights.kept_files(model_folder) == sorted([stale, half_written])
    _logits(text, kept)
    assert repacked_weights.kept_files(model_folder) == [kept]


def test_the_key_changes_with_the_model_and_the_build(model_folder):
    text = _text_path(model_folder)
    build = repacked_weights.build_key()
    assert repacked_weights.weights_path(text, "a" * 64, build) != repacked_weights.weights_path(text, "b" * 64, build)
    assert repacked_weights.weights_path(text, "a" * 64, build) != repacked_weights.weights_path(text, "a" * 64, "x")
    unhashed = repacked_weights.weights_path(text, None, build)
    text.write_bytes(text.read_bytes())  # the same bytes written again: a new modification time, a new identity
    assert repacked_weights.weights_path(text, None, build) != unhashed


def test_a_model_without_weights_to_repack_writes_nothing(converted, tmp_path):
    folder = tmp_path / "f32"
    shutil.copytree(converted("qwen2", "original", "F32"), folder)
    text = _text_path(folder)
    _, outcome = _logits(text, repacked_weights.weights_path(text, None, repacked_weights.build_key()))
    assert outcome == "not kept" and repacked_weights.kept_files(folder) == []


def test_the_engine_keeps_them_maps_them_at_its_next_load_and_answers_the_same(model_folder):
    question = [Turn("What is shown?", 0)]
    answers = []
    for expected in ("written", "mapped"):
        with Engine.from_folder(model_folder, EngineSettings(n_ctx=256)) as engine:
            assert engine.load_info["repacked_weights"] == expected
            kept = repacked_weights.kept_files(model_folder)
            assert len(kept) == 1
            maps = Path(f"/proc/{engine.pid}/maps").read_text() if Path("/proc/self/maps").exists() else ""
            if expected == "mapped":  # the weights are used from the file's pages (written: from the repack's)
                assert not maps or str(kept[0].resolve()) in maps
            answers.append(engine.ask(question, [], GREEDY).token_ids)
    with Engine.from_folder(model_folder, EngineSettings(n_ctx=256, keep_repacked_weights=False)) as engine:
        assert engine.load_info["repacked_weights"] is None
        assert repacked_weights.kept_files(model_folder) == []  # turned off: its disk is given back
        answers.append(engine.ask(question, [], GREEDY).token_ids)
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) > 0


def test_deleting_or_verifying_the_model_removes_its_repacked_weights(model_folder):
    with Engine.from_folder(model_folder, EngineSettings(n_ctx=256)):
        pass
    assert repacked_weights.kept_files(model_folder)
    assert verify_files(model_folder).ok
    assert repacked_weights.kept_files(model_folder) == []  # the next load writes them from the checked files
    with Engine.from_folder(model_folder, EngineSettings(n_ctx=256)) as engine:
        assert engine.load_info["repacked_weights"] == "written"
    models, _ = installed_models(model_folder.parent)
    delete_model(next(m for m in models if m.folder == model_folder))
    assert not model_folder.exists()


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="limits the size of files a process writes (POSIX)")
def test_a_write_that_fails_like_a_full_disk_leaves_nothing_and_the_model_computes_the_same(model_folder):
    """The worker's write is cut short (a file-size limit: writes fail as on a full disk); the load goes on."""
    text = _text_path(model_folder)
    kept = repacked_weights.weights_path(text, None, repacked_weights.build_key())
    script = f"""
import resource, signal, sys, json
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
from tests.inference.test_repacked_weights import _logits
from pathlib import Path
logits, outcome = _logits(Path({str(text)!r}), Path({str(kept)!r}))
print(json.dumps({{"outcome": outcome, "logits": logits.tolist()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] != "mapped"  # repacked at that load (its write, on a thread of its own, then failed)
    assert repacked_weights.kept_files(model_folder) == []  # no half-written file left behind
    assert "cannot write the repacked weights" in done.stderr  # llama.cpp's own log says so
    expected, _ = _logits(text, None)
    assert np.array_equal(np.array(result["logits"], dtype=np.float32), expected)


def _resident_bytes(pid: int, path: Path) -> int:
    """How much of the file `path` the process has mapped in (its pages in the process's page tables)."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) == 6 and fields[5] == str(path.resolve())
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads the worker's memory map from /proc")
def test_a_load_from_kept_weights_leaves_their_part_of_the_model_file_unread(tmp_path):
    """The model file's ranges of the repacked weights are not prefetched when the kept file replaces them: a load
    after a restart of the machine reads from the disk only what it uses. (Weights of a few MB each: the kernel maps
    up to 64 KB around each page it faults in, more than a tiny model's whole tensors.)"""
    from conversion.convert import convert
    from conversion.shapes import TINY
    from tests.support.checkpoints import build_checkpoint

    shapes = replace(TINY, hidden_size=1024, ffn_size=4096, n_layers=2)
    folder = tmp_path / "model"
    convert(build_checkpoint(tmp_path / "checkpoint", "qwen2", "original", shapes), folder, "Q4_K_M")
    text = _text_path(folder)
    resident = {}
    for expected in ("written", "mapped"):
        with Engine.from_folder(folder, EngineSettings(n_ctx=256)) as engine:
            assert engine.load_info["repacked_weights"] == expected
            resident[expected] = _resident_bytes(engine.pid, text)
    kept = repacked_weights.kept_files(folder)[0].stat().st_size
    assert resident["written"] > 0.8 * text.stat().st_size  # (nearly) the whole file was read to repack it
    # most of the kept weights' ranges stay unmapped (the kernel still maps a little around each range it reads)
    assert resident["mapped"] < resident["written"] - 0.6 * kept
