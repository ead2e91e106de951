"""Shared fixtures: tiny random-weight checkpoints in the real on-disk formats, built once per session."""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CRASH_LOG = os.environ.get("HUATUO_TEST_CRASH_LOG")  # `make test`: where a native crash's thread dump goes


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler setup, which writes to the terminal
def pytest_configure(config):
    """With HUATUO_TEST_CRASH_LOG, a native crash (a segmentation fault in a library) writes every thread's
    traceback to that file, from which `make test` shows the thread that crashed last, where a log's tail shows it."""
    if CRASH_LOG:
        config.huatuo_crash_log = open(CRASH_LOG, "w")  # noqa: SIM115 - open until the process ends
        faulthandler.enable(file=config.huatuo_crash_log, all_threads=True)


TEST_HANG_S = 900  # far above the slowest test: a test still running then is stuck (a modal dialog, a deadlock)


@pytest.fixture(autouse=True)
def stuck_test_watchdog():
    """A stuck test ends the run with every thread's traceback instead of holding CI until its time limit."""
    faulthandler.dump_traceback_later(TEST_HANG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def cycles_collected_on_the_main_thread(request):
    """As in the app (app/ui/gui_gc.py): once Qt is in use, reference cycles are collected on the main thread only
    (in the event loop and after each test), never by a worker thread, which would destroy Qt objects in them."""
    if "qtbot" in request.fixturenames or "qapp" in request.fixturenames:
        from app.ui.gui_gc import collect_on_gui_thread

        collect_on_gui_thread(request.getfixturevalue("qapp"))
    yield
    if (gui_gc := sys.modules.get("app.ui.gui_gc")) is not None and gui_gc.installed() is not None:
        gui_gc.installed().collect_due()


@pytest.fixture(autouse=True)
def private_data_folder(tmp_path_factory, monkeypatch):
    """Every test gets a data folder of its own: nothing a test does reaches the user's real one."""
    if "HUATUO_DATA_DIR" not in os.environ:
        monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path_factory.mktemp("data")))


FLAVOURS = [("qwen2", "original"), ("qwen2", "hf"), ("llama", "original"), ("llama", "hf")]


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Build a tiny checkpoint on first use, keyed by (flavour, layout)."""
    from tests.support.checkpoints import build_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    built: dict[tuple[str, str], object] = {}

    def get(flavour: str = "qwen2", layout: str = "original"):
        key = (flavour, layout)
        if key not in built:
            built[key] = build_checkpoint(root / f"{flavour}-{layout}", flavour, layout)
        return built[key]

    return get


@pytest.fixture(scope="session")
def converted(tiny_checkpoints, tmp_path_factory):
    """Convert a tiny checkpoint once per (flavour, layout, quant)."""
    from conversion.convert import convert

    root = tmp_path_factory.mktemp("converted")
    done: dict[tuple[str, str, str], object] = {}

    def get(flavour: str = "qwen2", layout: str = "original", quant: str = "F32"):
        key = (flavour, layout, quant)
        if key not in done:
            out = root / f"{flavour}-{layout}-{quant}"
            convert(tiny_checkpoints(flavour, layout), out, quant)
            done[key] = out
        return done[key]

    return get


@pytest.fixture(scope="session")
def qwen25vl_checkpoint(tmp_path_factory):
    """A tiny random Qwen2.5-VL checkpoint (HuatuoGPT-Vision-7B-Qwen2.5VL's architecture), built once."""
    from tests.support.qwen25vl_checkpoints import build_qwen25vl_checkpoint

    return build_qwen25vl_checkpoint(tmp_path_factory.mktemp("qwen25vl") / "tiny-qwen25vl", "flat")


@pytest.fixture(scope="session")
def qwen25vl_converted(qwen25vl_checkpoint, tmp_path_factory):
    """That checkpoint converted to F32 by the real converter, once per session."""
    from conversion.convert import convert

    out = tmp_path_factory.mktemp("qwen25vl-converted") / "F32"
    convert(qwen25vl_checkpoint, out, "F32")
    return out
