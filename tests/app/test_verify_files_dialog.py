"""The model manager's "Verify files": every byte of the selected model hashed off the GUI thread, with a progress
bar and Cancel; a changed byte is reported in the dialog."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from app.ui.model_manager import ModelManagerDialog
from inference.store.manifest import Manifest, ModelFile
from inference.store.verified import VERIFIED_NAME

CLICK = Qt.MouseButton.LeftButton
GIB = 1024**3
TIMEOUT_MS = 60_000


@pytest.fixture
def manager(qtbot, tmp_path):
    made = []

    def make(root):
        dialog = ModelManagerDialog(root, catalogue=[], bandwidth_gb_s=20.0)
        qtbot.addWidget(dialog)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        assert dialog.shutdown(20000)


def test_verify_files_passes_unchanged_files_and_reports_a_changed_byte(manager, qtbot, converted, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    folder = root / "tiny"
    shutil.copytree(converted("qwen2", "original", "F32"), folder)
    (folder / VERIFIED_NAME).unlink(missing_ok=True)
    dialog = manager(root)
    assert not dialog.verify_button.isEnabled()  # nothing selected
    dialog.installed_table.selectRow(0)
    check = dialog.verify_files()
    qtbot.addWidget(check)
    with qtbot.waitSignal(check.checked, timeout=TIMEOUT_MS) as result:
        pass
    assert result.args[0].ok and "All files match the manifest" in check.status.text()
    assert check.progress.value() == check.progress.maximum()
    assert check.buttons.button(QDialogButtonBox.StandardButton.Close) is not None
    assert (folder / VERIFIED_NAME).is_file()
    check.reject()

    text = folder / Manifest.read(folder).text.file
    data = bytearray(text.read_bytes())
    data[len(data) // 3] ^= 0x04
    text.write_bytes(bytes(data))
    qtbot.mouseClick(dialog.verify_button, CLICK)  # the selection stayed on the model
    [check] = [d for d in dialog.findChildren(type(check)) if d.result is None]
    qtbot.addWidget(check)
    qtbot.waitUntil(lambda: check.task is None, timeout=TIMEOUT_MS)
    assert not check.result.ok
    assert f"{text.name}: its SHA-256 does not match the manifest" in check.status.text()
    assert "will not load until it is installed again" in check.status.text()


def test_cancel_stops_reading_and_says_so(manager, qtbot, tmp_path):
    """A model too large to be read before Cancel is pressed (a sparse file: nothing is written to the disk)."""
    root = tmp_path / "models"
    folder = root / "large"
    folder.mkdir(parents=True)
    with open(folder / "text.gguf", "wb") as f:
        f.write(b"GGUF")
        f.truncate(16 * GIB)
    (folder / "mmproj.gguf").write_bytes(b"GGUF")
    Manifest("large", "qwen2", ModelFile("text.gguf", "F16", 16 * GIB, "0" * 64),
             ModelFile("mmproj.gguf", "F16", 4, "1" * 64), context_length=4096, hidden_size=8, image_size=336,
             image_tokens=576, vision_layers_used=1).write(folder)
    dialog = manager(root)
    dialog.installed_table.selectRow(0)
    check = dialog.verify_files()
    qtbot.addWidget(check)
    assert check.isVisible() and check.task is not None
    qtbot.mouseClick(check.buttons.button(QDialogButtonBox.StandardButton.Cancel), CLICK)
    assert check.isVisible()  # it stays open to say how it ended
    qtbot.waitUntil(lambda: check.task is None, timeout=TIMEOUT_MS)
    assert check.result is None and check.status.text().startswith("Cancelled")
    assert not (folder / VERIFIED_NAME).exists()
    qtbot.mouseClick(check.buttons.button(QDialogButtonBox.StandardButton.Close), CLICK)
    assert not check.isVisible()
