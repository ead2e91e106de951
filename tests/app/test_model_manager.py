"""The model manager dialog, offscreen with real widgets: import, default, delete, download from a local Hub with
progress, cancel, failures, and the convert route (from the catalogue and from a picked folder); and which model
the main window uses."""

from __future__ import annotations

import json
import shutil
from pathlib import PurePosixPath

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog, QInputDialog, QMessageBox

from app.model_jobs import CHECKPOINTS
from app.ui.model_manager import PROGRESS_STEPS, ModelManagerDialog
from inference import repacked_weights
from inference.store.catalogue import load_catalogue
from inference.store.gguf_check import check_folder
from inference.store.manifest import Manifest
from inference.store.models import default_model, import_pair, set_default_model
from tests.support.fake_hub import Fault, fake_hub, gguf_catalogue_model, publish  # noqa: F401 (fixture)
from tests.support.network_guard import no_network  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_network")
REPO = "huatuo-test/tiny-gguf"
CLICK = Qt.MouseButton.LeftButton


@pytest.fixture
def root(tmp_path):
    return tmp_path / "models"


@pytest.fixture
def make_manager(qtbot, root, fake_hub):  # noqa: F811 (the fixture above)
    """Dialogs built here are shut down (job cancelled, worker threads joined) before the local Hub stops."""
    made = []

    def make(catalogue=(), stall_timeout_s=5):
        dialog = ModelManagerDialog(root, catalogue=list(catalogue), endpoint=fake_hub.endpoint, bandwidth_gb_s=20.0,
                                    stall_timeout_s=stall_timeout_s)
        qtbot.addWidget(dialog)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        assert dialog.shutdown(20000), "a worker thread did not finish"


@pytest.fixture
def tiny(converted):
    return converted("qwen2", "original", "F32")


@pytest.fixture
def published(fake_hub, tiny, tmp_path):  # noqa: F811
    """The tiny pair served by the local Hub, and a catalogue that offers it."""
    publish(fake_hub, tiny, REPO)
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"format": 1, "models": [gguf_catalogue_model(tiny, REPO)]}))
    return load_catalogue(path)


def test_import_set_default_and_delete(make_manager, qtbot, tiny, root, monkeypatch):
    manifest = Manifest.read(tiny)
    dialog = make_manager()
    picks = iter([(str(tiny / manifest.text.file), ""), (str(tiny / manifest.mmproj.file), "")])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: next(picks))
    with qtbot.waitSignal(dialog.models_changed, timeout=15000):
        qtbot.mouseClick(dialog.import_button, CLICK)
    table = dialog.installed_table
    assert table.rowCount() == 1 and table.item(0, 1).text().startswith("F32")
    assert "Installed" in dialog.status_label.text() and not dialog.progress_bar.isVisible()
    qtbot.waitUntil(lambda: table.item(0, 3).text().startswith("fits: needs"), timeout=10000)
    [model] = dialog.models
    check_folder(model.folder)
    # A model of a few MB says so, in the status line and its row alike (never "0.0 GB").
    assert 1e6 < model.size_bytes < 1e9
    size = f"{model.size_bytes / 1e6:.1f} MB"
    assert dialog.status_label.text() == f"Installed {model.manifest.name} · F32 · {size}"
    assert table.item(0, 2).text() == size
    # The weights a load kept as repacked for this CPU (inference/repacked_weights.py) count too, and go with it.
    kept = repacked_weights.weights_path(model.folder / manifest.text.file, manifest.text.sha256, "this build")
    kept.write_bytes(b"\0" * 2_500_000)
    dialog.refresh()
    assert table.item(0, 2).text() == f"{size} (+ 2.5 MB prepared for this CPU)"

    table.selectRow(0)
    with qtbot.waitSignal(dialog.models_changed):
        qtbot.mouseClick(dialog.default_button, CLICK)
    assert default_model(root) == model.folder and table.item(0, 4).text() == "★ default"

    table.selectRow(0)
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.No)
    qtbot.mouseClick(dialog.delete_button, CLICK)
    assert model.folder.exists() and table.rowCount() == 1  # the user said no
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.models_changed):
        qtbot.mouseClick(dialog.delete_button, CLICK)
    assert table.rowCount() == 0 and not model.folder.exists() and default_model(root) is None


def test_a_download_shows_its_progress_and_installs_the_model(make_manager, qtbot, fake_hub, published, root):  # noqa: F811
    fake_hub.rate = 8_000_000  # bytes/s: about a second, long enough to see progress
    dialog = make_manager(published)
    values = []
    dialog.progress_bar.valueChanged.connect(values.append)
    qtbot.waitUntil(lambda: dialog.catalogue_table.item(0, 4).text().startswith("fits"), timeout=10000)
    dialog.catalogue_table.selectRow(0)
    assert dialog.download_button.text() == "Download" and dialog.download_button.isEnabled()
    with qtbot.waitSignal(dialog.models_changed, timeout=30000):
        qtbot.mouseClick(dialog.download_button, CLICK)
        assert dialog.progress_bar.isVisible() and dialog.cancel_button.isEnabled()
        assert not dialog.import_button.isEnabled()  # one job at a time
    assert any(0 < v < PROGRESS_STEPS for v in values) and max(values) == PROGRESS_STEPS
    assert dialog.installed_table.rowCount() == 1 and dialog.catalogue_table.item(0, 6).text() == "installed"
    assert not dialog.download_button.isEnabled()
    check_folder(root / "Tiny-F32")


def test_cancel_stops_the_download_and_keeps_it_resumable(make_manager, qtbot, fake_hub, published, root):  # noqa: F811
    # The Hub sends the first 100 kB of the text model and then holds the connection silent, so the download is
    # still running whenever Cancel is pressed; a long stall timeout leaves the stop to the Cancel button.
    text_file = published[0].text_file
    fake_hub.faults[text_file] = Fault(stall_after=100_000)
    dialog = make_manager(published, stall_timeout_s=600)
    part = root / "Tiny-F32" / f"{PurePosixPath(text_file).name}.part"
    dialog.catalogue_table.selectRow(0)
    qtbot.mouseClick(dialog.download_button, CLICK)
    qtbot.waitUntil(lambda: dialog.progress_bar.maximum() == PROGRESS_STEPS
                    and part.is_file() and part.stat().st_size > 0, timeout=10000)
    qtbot.mouseClick(dialog.cancel_button, CLICK)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=10000)
    assert dialog.status_label.text().startswith("Cancelled") and dialog.error_label.text() == ""
    folder = root / "Tiny-F32"
    assert not (folder / "manifest.json").exists() and all(p.name.endswith(".part") for p in folder.iterdir())
    assert dialog.catalogue_table.item(0, 6).text().startswith("partly downloaded")
    assert dialog.installed_table.rowCount() == 0 and dialog.download_button.isEnabled()


def test_a_failed_download_is_explained_in_the_dialog(make_manager, qtbot, fake_hub, published, root):  # noqa: F811
    fake_hub.faults[published[0].text_file] = Fault(corrupt=True)
    dialog = make_manager(published)
    dialog.catalogue_table.selectRow(0)
    qtbot.mouseClick(dialog.download_button, CLICK)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=15000)
    assert "does not match the Hub's checksum" in dialog.error_label.text()
    assert dialog.status_label.text() == "Failed" and dialog.installed_table.rowCount() == 0
    assert dialog.import_button.isEnabled()


def test_a_checkpoint_entry_is_downloaded_and_converted(make_manager, qtbot, fake_hub, tiny_checkpoints, root,  # noqa: F811
                                                        tmp_path):
    src = tiny_checkpoints("qwen2", "original")
    fake_hub.add_repo("huatuo-test/tiny-checkpoint",
                      {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()})
    catalogue = tmp_path / "models.json"  # the architecture numbers only feed the fit column
    catalogue.write_text(json.dumps({"format": 1, "bytes_per_weight": {"F16": 2.0}, "models": [{
        "name": "Tiny", "base": "tiny qwen2", "kind": "checkpoint", "repo_id": "huatuo-test/tiny-checkpoint",
        "text_parameters": 2_000_000, "vision_parameters": 200_000, "quantizations": ["F16"],
        "architecture": {"architecture": "qwen2", "context_length": 4096, "hidden_size": 64, "n_layers": 2,
                         "n_kv_heads": 2, "head_dim": 16, "image_size": 336, "image_tokens": 576}}]}))
    dialog = make_manager(load_catalogue(catalogue))
    dialog.catalogue_table.selectRow(0)
    assert dialog.download_button.text() == "Download and convert"
    with qtbot.waitSignal(dialog.models_changed, timeout=60000):
        qtbot.mouseClick(dialog.download_button, CLICK)
    [model] = dialog.models
    assert model.folder == root / "Tiny-F16" and model.manifest.text.quantization == "F16"
    assert model.manifest.text.file == "Tiny-F16.gguf"
    check_folder(model.folder)
    assert not (root / CHECKPOINTS / "Tiny").exists()  # converted, so the download was removed


def test_a_picked_checkpoint_folder_is_converted(make_manager, qtbot, tiny_checkpoints, root, monkeypatch):
    src = tiny_checkpoints("qwen2", "original")
    dialog = make_manager()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(src))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *args, **kwargs: ("F16", True))
    with qtbot.waitSignal(dialog.models_changed, timeout=60000):
        qtbot.mouseClick(dialog.convert_button, CLICK)
    [model] = dialog.models
    assert model.folder == root / f"{src.name}-F16"
    check_folder(model.folder)


def test_a_broken_checkpoint_folder_is_explained(make_manager, qtbot, tmp_path, root):
    broken = tmp_path / "not-a-checkpoint"
    broken.mkdir()
    dialog = make_manager()
    dialog.convert_folder(broken, "F16")
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=10000)
    assert "no config.json" in dialog.error_label.text()
    assert not (root / "not-a-checkpoint-F16").exists()


def test_a_dialog_deleted_mid_download_is_not_called_back(qtbot, fake_hub, published, root):  # noqa: F811
    import shiboken6

    fake_hub.rate = 2_000_000
    dialog = ModelManagerDialog(root, catalogue=list(published), endpoint=fake_hub.endpoint, bandwidth_gb_s=20.0,
                                stall_timeout_s=5)
    dialog.download(published[0])
    qtbot.waitUntil(lambda: dialog.progress_bar.value() > 0, timeout=10000)
    job = dialog.job
    job.cancel()
    shiboken6.delete(dialog)  # its job still runs; its progress and ending must go nowhere, not to a dead widget
    assert job.wait(20)
    qtbot.waitUntil(lambda: job.finished, timeout=10000)


def _break(folder):
    """A copy gone wrong: its text GGUF cut to half."""
    text = folder / Manifest.read(folder).text.file
    text.write_bytes(text.read_bytes()[: text.stat().st_size // 2])


def test_the_selection_follows_its_model_not_its_row(make_manager, qtbot, tiny, root, monkeypatch):
    root.mkdir(parents=True)
    for name in ("b-model", "c-model"):
        shutil.copytree(tiny, root / name)
    dialog = make_manager()
    shutil.copytree(tiny, root / "a-model")  # copied in while the dialog is open: it comes first on the next refresh
    dialog.installed_table.selectRow(1)
    assert dialog.selected_model().folder.name == "c-model"
    with qtbot.waitSignal(dialog.models_changed):
        qtbot.mouseClick(dialog.default_button, CLICK)
    assert default_model(root) == root / "c-model"
    assert [m.folder.name for m in dialog.models] == ["a-model", "b-model", "c-model"]
    assert dialog.selected_model().folder.name == "c-model"
    assert dialog.installed_table.item(2, 4).text() == "★ default"
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.models_changed):
        qtbot.mouseClick(dialog.delete_button, CLICK)  # deletes the model the user chose, not what is on its row
    assert not (root / "c-model").exists() and (root / "b-model").is_dir() and (root / "a-model").is_dir()
    assert dialog.selected_model() is None and not dialog.delete_button.isEnabled()


def test_reopening_shows_the_folder_as_it_is_now(make_manager, qtbot, tiny, root, tmp_path):
    dialog = make_manager()
    broken = tmp_path / "not-a-checkpoint"
    broken.mkdir()
    dialog.convert_folder(broken, "F16")
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=10000)
    assert dialog.status_label.text() == "Failed" and dialog.error_label.text()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Close), CLICK)
    assert not dialog.isVisible()
    shutil.copytree(tiny, root / "tiny")  # installed by hand while the dialog was closed
    dialog.show()
    assert [m.folder.name for m in dialog.models] == ["tiny"] and dialog.installed_table.rowCount() == 1
    assert dialog.status_label.text() == "" and dialog.error_label.text() == ""


def test_a_broken_model_is_listed_as_broken_and_never_made_default(make_manager, qtbot, tiny, root):
    root.mkdir(parents=True)
    shutil.copytree(tiny, root / "tiny")
    shutil.copytree(tiny, root / "a-copy")  # sorts first
    _break(root / "a-copy")
    dialog = make_manager()
    assert [m.folder.name for m in dialog.models] == ["a-copy", "tiny"]
    table = dialog.installed_table
    assert table.item(0, 3).text().startswith("cannot be used:") and "bytes" in table.item(0, 3).text()
    assert table.item(0, 0).text().endswith("(a-copy)")  # copies share the model name: the folder tells them apart
    assert table.item(0, 4).text() == "" and table.item(1, 4).text() == "★ default"
    qtbot.waitUntil(lambda: table.item(1, 3).text().startswith("fits"), timeout=10000)
    assert table.item(0, 3).text().startswith("cannot be used:")  # no fit verdict overwrites it
    table.selectRow(0)
    assert not dialog.default_button.isEnabled() and dialog.delete_button.isEnabled()
    dialog.set_default(dialog.models[0])  # even when asked directly
    assert "a-copy" in dialog.error_label.text() and default_model(root) == root / "tiny"


def _rows_shown(table) -> int:
    return table.viewport().height() // table.verticalHeader().defaultSectionSize()


def test_the_installed_list_gets_spare_height_and_a_long_reason_hides_no_column(qtbot, tiny, root):
    root.mkdir(parents=True)
    for name in ("tiny", "b-model", "c-model", "d-model"):
        shutil.copytree(tiny, root / name)
    broken = root / "a-copy"  # sorts first
    shutil.copytree(tiny, broken)
    _break(broken)
    dialog = ModelManagerDialog(root, catalogue=load_catalogue(), bandwidth_gb_s=20.0)  # the real list
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    free = dialog.screen().availableGeometry()
    assert dialog.width() <= free.width() and dialog.height() <= free.height()
    table = dialog.installed_table
    assert table.rowCount() == 5 and _rows_shown(table) >= 4

    # Spare height goes to the lists, the installed one at least as much as the catalogue.
    before, catalogue_before = table.height(), dialog.catalogue_table.height()
    dialog.resize(dialog.width(), dialog.height() + 200)
    qtbot.waitUntil(lambda: table.height() > before, timeout=5000)
    grown = table.height() - before
    assert grown >= 90 and grown >= dialog.catalogue_table.height() - catalogue_before, grown

    # The broken model's reason is cut to fit with its whole text in the tooltip; the default's ★ stays in view.
    reason = table.item(0, 3)
    assert reason.text().startswith("cannot be used:") and reason.toolTip() == reason.text()
    assert table.fontMetrics().horizontalAdvance(reason.text()) > table.columnWidth(3)  # longer than its room
    assert table.horizontalHeader().length() <= table.viewport().width()
    star = next(r for r in range(table.rowCount()) if table.item(r, 4).text() == "★ default")
    for column in range(table.columnCount()):
        cell = table.visualRect(table.model().index(star, column))
        assert 0 <= cell.left() and cell.right() < table.viewport().width() and cell.width() > 0, column
    needed = table.fontMetrics().horizontalAdvance(table.item(star, 4).text())
    assert table.columnWidth(4) >= needed
    table.selectRow(0)  # and the details below the list say it in full
    assert dialog.quality_label.text().startswith(f"Cannot be used: {dialog.models[0].problem}")
    assert dialog.details.height() < table.height()
    dialog.shutdown()


def test_the_model_in_use_changes_only_by_the_users_choice(qtbot, tiny, tmp_path, monkeypatch):
    from app.ui.main import MainWindow

    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    models = tmp_path / "data" / "models"
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.chat.model_folder is None
    manifest = Manifest.read(tiny)
    first = import_pair(tiny / manifest.text.file, tiny / manifest.mmproj.file, models, name="tiny")
    window.refresh_models()  # the first model installed becomes the default
    assert window.chat.model_folder == first.folder and default_model(models) == first.folder
    shutil.copytree(first.folder, models / "a-broken")  # both sort before it; one is a broken copy
    _break(models / "a-broken")
    shutil.copytree(first.folder, models / "a-whole")
    window.refresh_models()
    assert window.chat.model_folder == first.folder
    panel = window.model_picker.note.text()
    assert "Cannot be used" in panel and "a-broken" in panel and "a-whole" not in panel
    set_default_model(models, models / "a-whole")  # what Set default in the model manager does
    window.refresh_models()
    assert window.chat.model_folder == models / "a-whole"
    _break(models / "a-whole")  # the default breaks: nothing else is picked behind the user's back
    window.refresh_models()
    assert window.chat.model_folder is None
    assert "the default model (a-whole) cannot be used" in window.model_picker.note.text()


def test_an_installed_models_details_show_its_last_verification(make_manager, qtbot, tiny_checkpoints, converted,
                                                                root):
    from conversion.verify import verify

    folder = root / "tiny"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder)
    dialog = make_manager()
    dialog.installed_table.selectRow(0)
    unverified = dialog.quality_label.text()
    assert unverified.startswith("Quality: not verified") and str(folder) in unverified

    report = verify(tiny_checkpoints("qwen2", "original"), folder)  # writes verify.json beside the manifest
    assert report.passed
    dialog.refresh()
    dialog.installed_table.selectRow(0)
    text = dialog.quality_label.text()
    assert text.startswith("Quality: passed (huatuo verify, ") and "text Q8_0" in text
    assert f"KL divergence, mean (nats/token): {report.kld_mean:.6g} (limit ≤ " in text
    assert "same top token" in text and "image embedding cosine, min" in text and "FAIL" not in text
