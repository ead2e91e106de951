"""`huatuo eval` end to end with the tiny converted model on a generated benchmark file in the released format.

A random tiny model answers nonsense, so these tests check consistency (reports against the per-item results,
resumption, pairing), not accuracy.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.support.evaluation_data import DATASETS, write_benchmark
from training.evaluation import benchmark, official, runner, strict
from training.evaluation.backends import EngineBackend
from training.evaluation.cli import main
from training.evaluation.protocol import Protocol
from training.evaluation.report import write_report

ROOT = Path(__file__).resolve().parents[2]
# One engine thread: llama.cpp's spinning threads slow down badly when other work shares the cores.


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp("benchmark"), per_benchmark=3)


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def _check_run(folder: Path, items_by_id: dict, per_benchmark: int, shown: dict | None = None) -> None:
    """report.json, report.md (and what --json printed) agree with results.jsonl, and each verdict with its reply."""
    records = _records(folder)
    assert len({r["id"] for r in records}) == len(records) == per_benchmark * len(DATASETS)
    report = json.loads((folder / "report.json").read_text())
    markdown = (folder / "report.md").read_text()
    assert list(report["benchmarks"]) == list(DATASETS)
    for name, summary in report["benchmarks"].items():
        rows = [r for r in records if r["dataset"] == name]
        assert summary["n"] == len(rows) == per_benchmark
        assert summary["correct"] == sum(r["correct"] for r in rows)
        assert summary["accuracy"] == summary["correct"] / summary["n"]
        assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
        assert summary["unparsed"] == sum(r["letter"] is None for r in rows)
        assert f"| {name} | {per_benchmark} |" in markdown
        if shown is not None:
            assert {k: shown[name][k] for k in ("n", "accuracy", "ci_low", "ci_high")} == \
                   {k: summary[k] for k in ("n", "accuracy", "ci_low", "ci_high")}
    assert report["overall"]["n"] == len(records)
    greedy = report["run"]["settings"]["protocol"] == "deterministic"
    for r in records:
        item = items_by_id[r["id"]]
        assert r["item"] == item.sha and r["answer"] == item.answer_label
        assert r["strict_letter"] == strict.parse(r["reply"], item.options).letter
        assert r["official_letter"] == official.parse_letter(r["reply"])
        letter = r["strict_letter"] if greedy else r["official_letter"]
        assert r["letter"] == letter and r["correct"] == (letter is not None and letter == item.answer_label)


def test_two_models_reports_resume_and_comparison(converted, data, tmp_path, capsys):
    f32, q8 = converted("qwen2", "original", "F32"), converted("qwen2", "original", "Q8_0")
    out = tmp_path / "runs"
    code = main(["--data", str(data), "--model", str(f32), "--model", str(q8), "--out", str(out),
                 "--protocol", "deterministic", "--max-tokens", "6", "--limit", "2", "--threads", "1", "--json"])
    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    bench = benchmark.load(data)
    by_id = {item.id: item for item in bench.items}
    folders = [out / "qwen2-original-F32.deterministic", out / "qwen2-original-Q8_0.deterministic"]
    assert len(printed) == 2
    for folder, shown in zip(folders, printed, strict=True):
        _check_run(folder, by_id, 2, shown)

    comparison = json.loads((out / "compare-qwen2-original-F32-vs-qwen2-original-Q8_0.json").read_text())
    assert list(comparison["benchmarks"]) == list(DATASETS)
    for row in comparison["benchmarks"].values():
        assert row["n"] == 2
        assert row["both_right"] + row["only_a_right"] + row["only_b_right"] + row["both_wrong"] == 2
        assert row["difference"] == row["b"]["accuracy"] - row["a"]["accuracy"]
    assert (out / "compare-qwen2-original-F32-vs-qwen2-original-Q8_0.md").read_text().startswith(
        "# qwen2-original-F32 (A) vs qwen2-original-Q8_0 (B)")

    # Resume: one more item per benchmark costs exactly six new answers.
    backend = EngineBackend(f32, threads=1)
    outcome = runner.run(backend, bench, benchmark.select(bench, limit=3), folders[0], Protocol("deterministic", 6),
                         progress=False)
    assert (outcome.done_before, outcome.answered, backend.calls, outcome.errors) == (12, 6, 6, [])
    write_report(folders[0])
    _check_run(folders[0], by_id, 3)

    # The same command compares finished runs on its own.
    assert main(["compare", str(folders[0]), str(folders[1]), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["benchmarks"]["SLAKE_test"]["n"] == 2  # only the items both runs answered are paired

    # A run folder is never continued with other settings.
    with pytest.raises(runner.RunError, match="different settings"):
        runner.run(EngineBackend(f32, threads=1), bench, bench.items, folders[0], Protocol("official"), progress=False)


def test_cancel_keeps_answers_and_a_rerun_finishes(converted, data, tmp_path):
    bench = benchmark.load(data)
    items = benchmark.select(bench, ["vqa-rad", "pmc-vqa"])
    folder, protocol = tmp_path / "run", Protocol("official", max_new_tokens=6)
    cancel = threading.Event()
    seen = []

    def stop_after_two(record):
        seen.append(record)
        if len(seen) == 2:
            cancel.set()

    model = converted("qwen2", "original", "Q8_0")
    outcome = runner.run(EngineBackend(model, threads=1), bench, items, folder, protocol, cancel=cancel,
                         progress=False, on_result=stop_after_two)
    assert outcome.cancelled and outcome.answered == 2 and len(_records(folder)) == 2
    with open(folder / "results.jsonl", "a") as f:  # a crash in the middle of writing a line
        f.write('{"id": 99, "item": "cut sh')
    assert len(runner.RunStore(folder).records()) == 2

    backend = EngineBackend(model, threads=1)
    outcome = runner.run(backend, bench, items, folder, protocol, progress=False)
    assert (outcome.done_before, outcome.answered, backend.calls) == (2, len(items) - 2, len(items) - 2)
    records = _records(folder)
    assert sorted(r["id"] for r in records) == [item.id for item in items]
    # Sampled, but with a seed per item: a repeated run draws the same replies.
    repeat = tmp_path / "repeat"
    runner.run(EngineBackend(model, threads=1), bench, items, repeat, protocol, progress=False)
    assert {r["id"]: r["reply"] for r in _records(repeat)} == {r["id"]: r["reply"] for r in records}


def test_reference_model_gives_the_f32_engine_s_greedy_replies(tiny_checkpoints, converted, data, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["--data", str(data), "--model", str(converted("qwen2", "original", "F32")),
                 "--reference", str(tiny_checkpoints("qwen2", "original")), "--out", str(out),
                 "--protocol", "deterministic", "--max-tokens", "8", "--limit", "1", "--bench", "slake,omnimedvqa",
                 "--threads", "1", "--json"])
    assert code == 0, capsys.readouterr().err
    engine = _records(out / "qwen2-original-F32.deterministic")
    reference = _records(out / "reference-qwen2-original.deterministic")
    assert len(engine) == 2 and [r["reply"] for r in engine] == [r["reply"] for r in reference]
    comparison = json.loads(next(out.glob("compare-*.json")).read_text())
    assert all(row["same_letter"] == row["n"] == 1 for row in comparison["benchmarks"].values())


def test_ctrl_c_keeps_what_is_done(converted, data, tmp_path):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "training.evaluation", "--data", str(data), "--out", str(out),
               "--model", str(converted("qwen2", "original", "Q8_0")), "--protocol", "deterministic",
               "--max-tokens", "3000", "--threads", "1", "--json"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    results = out / "qwen2-original-Q8_0.deterministic" / "results.jsonl"
    deadline = time.monotonic() + 120
    while not (results.is_file() and results.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    workers = [p for p in psutil.Process(process.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    assert workers
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "cancelled:" in stderr and "run the same command again" in stderr and "error" not in stderr
    kept = _records(results.parent)
    assert 1 <= len(kept) < 18
    assert sum(s["n"] for s in json.loads(stdout).values()) == len(kept)  # the report covers what was done
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)  # the worker is gone
