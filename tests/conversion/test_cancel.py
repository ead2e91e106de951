"""Interrupting a conversion leaves nothing under a final name, and no temporary files."""

import threading

import pytest

from conversion.convert import convert
from inference.cancellation import Cancelled


@pytest.mark.parametrize("stage", ["text model", "quantizing to Q4_K_M", "vision projector"])
def test_cancel_at_each_stage_leaves_no_file(tiny_checkpoints, tmp_path, stage):
    cancel = threading.Event()

    def progress(current, done, total):
        if current == stage:
            cancel.set()

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        convert(tiny_checkpoints("qwen2", "original"), out, "Q4_K_M", progress=progress, cancel=cancel)
    assert sorted(p.name for p in out.iterdir()) == []


def test_keyboard_interrupt_leaves_no_file(tiny_checkpoints, tmp_path):
    calls = 0

    def progress(stage, done, total):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(tiny_checkpoints("llama", "original"), out, "F16", progress=progress)
    assert sorted(p.name for p in out.iterdir()) == []
