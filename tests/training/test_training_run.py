"""Real training runs on CPU with gloo, launched as a user would (python -m training, torchrun):
stage 1 on one process, paused and exported; stage 2 on two ranks from that export; a resumed run that must
repeat the uninterrupted one exactly; and the whole chain to an answer in the engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from inference import prompt
from tests.support.training_data import build_pubmedvision, split_parts
from training.checkpoint import step_dir
from training.cli import main as training_cli
from training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "training" / "configs" / "tiny_test.yaml")
STAGE2 = ["--set", "model.base_llm=null", "--set", "model.vision_tower=null", "--set", "train.max_steps=6",
          "--set", "system.checkpoint_every_steps=3"]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _run(args: list, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUATUO_TINY": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(a) for a in args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="module")
def workspace(tiny_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    split_parts(tiny_checkpoints("qwen2", "original"), root / "parts")
    build_pubmedvision(root / "pubmedvision", n_records=32)
    return root


@pytest.fixture(scope="module")
def stage1(workspace):
    """Stage 1 (projector only) on one process; exported at the end, and again from the command line."""
    run = workspace / "runs" / "stage1"
    result = _run([sys.executable, "-m", "training", "--config", TINY, "--set", "stage=1",
                   "--set", "train.learning_rate=1e-3", "--run-dir", run], workspace)
    assert "finished at step 8 of 8" in result.stdout
    export = workspace / "stage1-export"
    assert training_cli(["export-checkpoint", str(run), str(export)]) == 0
    return run, export


@pytest.fixture(scope="module")
def stage2(workspace, stage1):
    """Stage 2 from the stage-1 export on two ranks (the command starts torchrun itself), uninterrupted."""
    run = workspace / "runs" / "stage2"
    _run([sys.executable, "-m", "training", "--nproc-per-node", "2", "--master-port", _free_port(),
          "--config", TINY, "--set", f"model.init_checkpoint={stage1[1]}", *STAGE2, "--run-dir", run], workspace)
    return run


def _weights(folder: Path) -> dict:
    tensors = {}
    for shard in sorted(folder.glob("model-*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def test_stage1_trains_only_the_projector(workspace, stage1):
    run, export = stage1
    assert (run / "checkpoints" / "latest").read_text() == "step-00000008"
    assert len(read_metrics(run)) == 8
    config = json.loads((export / "config.json").read_text())
    assert config["architectures"] == ["LlavaQwen2ForCausalLM"] and config["mm_projector_type"] == "mlp2x_gelu"
    exported = _weights(export)
    at_end = _weights(run / "export")  # written when the run finished: the same checkpoint, the same bytes
    assert exported.keys() == at_end.keys() and all(exported[k].equal(at_end[k]) for k in exported)
    base = load_file(workspace / "parts" / "llm" / "model.safetensors")
    clip = load_file(workspace / "parts" / "clip" / "model.safetensors")
    for name, tensor in base.items():  # the frozen language model is exactly the base model
        assert exported[name].equal(tensor), name
    for name, tensor in clip.items():  # and the tower exactly CLIP's
        assert exported["model.vision_tower.vision_tower." + name].equal(tensor), name
    assert {"model.mm_projector.0.weight", "model.mm_projector.2.bias"} <= exported.keys()
    losses = [r["loss"] for r in read_metrics(run)]
    assert losses[-1] < losses[0], losses


def test_stage2_loss_falls(stage2):
    losses = [r["loss"] for r in read_metrics(stage2)]
    assert len(losses) == 6
    assert losses[-1] < 0.75 * losses[0], losses
    record = read_metrics(stage2)[-1]
    assert record["tokens_per_s"] > 0 and record["mfu"] is None  # no peak FLOPs are known for a CPU
    assert record["peak_mem_gb"] > 0


def test_stopped_and_resumed_run_repeats_the_uninterrupted_one(workspace, stage1, stage2):
    """A run stopped after step 3 and continued by a fresh launch gives exactly the losses, gradient norms
    and final weights of the run that never stopped."""
    run = workspace / "runs" / "stopped"
    common = ["--config", TINY, "--set", f"model.init_checkpoint={stage1[1]}", *STAGE2, "--run-dir", run]
    result = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                   f"--master-port={_free_port()}", "-m", "training", *common, "--stop-after-steps", "3"], workspace)
    assert "paused at step 3 of 6" in result.stdout
    assert (run / "checkpoints" / "latest").read_text() == step_dir(run, 3).name
    assert not (run / "export").exists()  # only a finished run is exported
    _run([sys.executable, "-m", "training", "--nproc-per-node", "2", "--master-port", _free_port(), *common],
         workspace)
    uninterrupted, stopped = read_metrics(stage2), read_metrics(run)
    assert [r["step"] for r in stopped] == [1, 2, 3, 4, 5, 6]
    for before, after in zip(uninterrupted, stopped, strict=True):
        assert after["loss"] == before["loss"] and after["grad_norm"] == before["grad_norm"]
        assert after["lr"] == before["lr"] and after["tokens"] == before["tokens"]
    final, resumed = _weights(stage2 / "export"), _weights(run / "export")
    assert final.keys() == resumed.keys() and all(final[k].equal(resumed[k]) for k in final)


def test_chain_train_export_convert_verify_answer(stage2, tmp_path):
    """The trained run's export converts without options, passes verify, and the engine answers about an image."""
    from conversion.convert import convert
    from conversion.verify import sample_image, verify
    from inference.engine import Engine
    from inference.sampling import SamplingSettings

    export = stage2 / "export"
    out = tmp_path / "converted"
    convert(export, out, "F32")
    report = verify(export, out)
    assert report.passed, report.failures
    image_path = tmp_path / "film.png"
    sample_image().save(image_path)
    with Engine.from_folder(out) as engine:
        answer = engine.ask([prompt.Turn("Describe the image.", n_images=1)], [engine.prepare_image(image_path)],
                            SamplingSettings.greedy_decoding(12))
    assert answer.finish in ("stop", "length") and answer.token_ids, answer
