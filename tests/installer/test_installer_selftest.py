"""`huatuo --selftest` run from source: every check passes here, and a missing decoder plugin is caught."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import selftest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    code = "import sys; from app.selftest import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_selftest_passes_and_reports_each_check_as_json(tmp_path):
    result = run("--selftest", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["passed"] and not report["frozen"]
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["processor", "runtime only", "resources", "decoders", "unsupported syntax", "llama.cpp",
                            "main window", "data folder private"]
    assert all(c["ok"] for c in checks.values())
    decoders = checks["decoders"]["detail"]
    assert "RLE Lossless [app, pydicom, pylibjpeg]" in decoders
    assert "JPEG 2000 Lossless [app, gdcm, pillow, pylibjpeg]" in decoders
    assert "JPEG-LS Lossless [app, gdcm, pyjpegls]" in decoders
    assert "JPEG Baseline (Process 1) [app, gdcm, pillow]" in decoders
    assert "+huatuo" in checks["llama.cpp"]["detail"]
    assert "PDF export" in checks["main window"]["detail"]
    assert "this run created: owner only" in checks["data folder private"]["detail"]
    # the report lines went to stderr, one per check, ahead of the JSON object
    assert result.stderr.count("ok    ") == len(checks)


def test_selftest_answers_with_a_model(converted):
    result = run("--selftest", "--model", str(converted("qwen2", "original", "F32")))
    assert result.returncode == 0, result.stdout + result.stderr
    answer = next(line for line in result.stdout.splitlines() if "answer:" in line)
    assert answer.startswith("ok") and "16 tokens" in answer
    assert result.stdout.strip().splitlines()[-1].startswith("self-test passed (9/9 checks")


def test_selftest_fails_clearly_on_a_bad_model_folder(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    result = run("--selftest", "--model", str(tmp_path))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  answer:")
    assert "self-test FAILED (8/9 checks" in result.stdout


def test_a_missing_decoder_plugin_is_named():
    """What a frozen build without pylibjpeg's package metadata would show: the plugin is reported missing."""
    problems: list[str] = []
    summary = selftest._decode_sample("RLE Lossless", "MR_small_RLE.dcm", "MR_small.dcm", ("pydicom", "nosuchplugin"),
                                      0.0, problems)
    assert summary == "RLE Lossless [app, pydicom]"
    assert problems == ["RLE Lossless: decoder plugin 'nosuchplugin' is missing (have: ['pydicom', 'pylibjpeg'])"]


def test_a_decoder_that_differs_from_the_reference_is_caught():
    problems: list[str] = []
    # JPEG baseline is lossy: against a lossless reference with no tolerance it must be reported
    selftest._decode_sample("JPEG Baseline", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", ("pillow",), 0.0, problems)
    assert problems and all("differs from the reference" in p for p in problems)


def test_startup_probe_reports_the_time_to_the_window():
    started = time.monotonic()
    result = run("--startup-probe")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("window shown ") and line.endswith("(platform offscreen)")
    # A time within this run: the process started after `started` and showed its window before it ended (plus
    # 1 s: the process start time is counted from the boot time, which Linux gives in whole seconds).
    assert 0 < float(line.split()[2]) < elapsed + 1


def test_the_sample_files_ship_in_the_pydicom_wheel():
    """The frozen app bundles exactly SAMPLE_FILES; each must exist locally (nothing is downloaded)."""
    for name in selftest.SAMPLE_FILES:
        assert Path(selftest.sample_path(name)).is_file(), name


def _die_of_illegal_instruction() -> None:
    os.kill(os.getpid(), signal.SIGILL)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals")
def test_an_illegal_instruction_in_llama_cpp_s_process_is_explained():
    process = multiprocessing.get_context("fork").Process(target=_die_of_illegal_instruction)
    process.start()
    message = selftest._child_failure(process)
    assert process.exitcode == -signal.SIGILL
    assert message.startswith("llama.cpp died of an illegal instruction: ")
