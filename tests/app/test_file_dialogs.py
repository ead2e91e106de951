"""Where the Open dialogs start: the first time in the user's documents folder, then in the folder last used for
that kind of dialog, across restarts, never in the working folder the app was started from."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QFileDialog

from app.ui.main import MainWindow
from app.ui.model_manager import ModelManagerDialog
from inference.store.manifest import Manifest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user with a documents folder, who started the app from somewhere else."""
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DOCUMENTS_DIR", raising=False)
    started_in = tmp_path / "started-in"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    return home


class Dialogs:
    """QFileDialog's static functions answering as a user would, noting the folder each dialog started in."""

    def __init__(self, monkeypatch):
        self.started: list[str] = []
        self.answers: list[str] = []
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda parent, caption, folder="", *a, **k:
                            (self._answer(folder), ""))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, caption, folder="", *a, **k:
                            self._answer(folder))

    def _answer(self, folder: str) -> str:
        self.started.append(folder)
        return str(self.answers.pop(0)) if self.answers else ""


def _window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    return window


def test_open_file_and_folder_start_in_documents_then_where_the_user_last_was(qtbot, home, tmp_path, monkeypatch):
    dialogs = Dialogs(monkeypatch)
    documents = str(home / "Documents")
    window = _window(qtbot)
    window.choose_file()  # cancelled
    window.choose_folder()
    assert dialogs.started == [documents, documents]  # not the folder the app was started in

    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "scan.png").write_bytes(b"")  # what is opened does not matter here: where the dialog was
    studies = tmp_path / "studies"
    (studies / "patient-1").mkdir(parents=True)
    dialogs.answers = [scans / "scan.png", studies / "patient-1"]
    window.choose_file()
    window.choose_folder()
    window.choose_file()
    window.choose_folder()
    assert dialogs.started[-2:] == [str(scans), str(studies)]  # each kind its own folder; a folder's neighbours
    window.close()

    restarted = _window(qtbot)  # and after a restart
    restarted.choose_file()
    restarted.choose_folder()
    assert dialogs.started[-2:] == [str(scans), str(studies)]
    shutil.rmtree(scans)  # a remembered folder that is gone: documents again
    restarted.choose_file()
    assert dialogs.started[-1] == documents


def test_importing_a_model_starts_in_documents_then_in_the_models_folder_last_used(qtbot, home, converted,
                                                                                   tmp_path, monkeypatch):
    pair = tmp_path / "downloads" / "pair"
    shutil.copytree(converted("qwen2", "original", "F32"), pair)
    manifest = Manifest.read(pair)
    dialogs = Dialogs(monkeypatch)
    dialog = ModelManagerDialog(tmp_path / "models", catalogue=[], bandwidth_gb_s=20.0)
    qtbot.addWidget(dialog)
    dialog.import_button.click()  # cancelled
    assert dialogs.started == [str(home / "Documents")]
    dialogs.answers = [pair / manifest.text.file, pair / manifest.mmproj.file]
    with qtbot.waitSignal(dialog.models_changed, timeout=15000):
        dialog.import_button.click()
    assert dialogs.started[-1] == str(pair)  # the projector is looked for beside the text model
    assert dialog.shutdown(20000)

    again = ModelManagerDialog(tmp_path / "models", catalogue=[], bandwidth_gb_s=20.0)  # opened again later
    qtbot.addWidget(again)
    again.import_button.click()
    assert dialogs.started[-1] == str(pair)
    assert again.shutdown(20000)


def test_a_folder_that_cannot_be_remembered_never_stops_the_file_from_opening(qtbot, home, tmp_path, monkeypatch):
    from app.paths import data_dir
    from app.ui.file_dialogs import FOLDERS_NAME, STUDY_FILE, documents_folder, open_file

    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    (data_dir() / (FOLDERS_NAME + ".part")).mkdir(parents=True)  # the write fails, as on a full disk
    study = tmp_path / "studies" / "ct.dcm"
    study.parent.mkdir()
    study.write_bytes(b"")
    dialogs = Dialogs(monkeypatch)
    dialogs.answers.append(study)
    assert open_file(None, STUDY_FILE, "Open", "*") == str(study)  # chosen, though not remembered
    assert not (data_dir() / FOLDERS_NAME).exists()
    dialogs.answers.append(study)
    open_file(None, STUDY_FILE, "Open", "*")
    assert dialogs.started == [str(documents_folder())] * 2
