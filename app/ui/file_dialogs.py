"""Where the Open dialogs start: in the folder the user last went to in a dialog of the same kind (a study's file, a
study's folder, a model's files, ...), remembered in the data folder across restarts; the first time, in the user's
documents folder (or home). Never the process's working folder, which says nothing about where the user's files are.
Exports start in the documents folder each time (app.ui.chat_export)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

from app.paths import data_dir

FOLDERS_NAME = "dialog-folders.json"  # {kind: folder}, beside settings.json

STUDY_FILE, STUDY_FOLDER = "study file", "study folder"
MODEL_FILE, CHECKPOINT_FOLDER = "model file", "checkpoint folder"
DECK = "practice deck"


def documents_folder() -> Path:
    """The user's documents folder, or home where there is none (never a shared temporary folder)."""
    for location in (QStandardPaths.StandardLocation.DocumentsLocation, QStandardPaths.StandardLocation.HomeLocation):
        folder = QStandardPaths.writableLocation(location)
        if folder and Path(folder).is_dir():
            return Path(folder)
    return Path.home()


def start_folder(kind: str) -> Path:
    """Where a dialog of this kind starts: the folder remembered for it while it still exists, else documents."""
    remembered = _remembered().get(kind)
    if isinstance(remembered, str) and Path(remembered).is_dir():
        return Path(remembered)
    return documents_folder()


def remember(kind: str, folder: str | Path) -> None:
    """The next dialog of this kind starts in `folder` (written at once: a crash or a restart keeps it)."""
    folders = _remembered()
    folders[kind] = str(Path(folder).resolve())
    path = data_dir() / FOLDERS_NAME
    partial = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(folders, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
    except OSError:  # a full or read-only disk: the file still opens; the next dialog starts where it can
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def open_file(parent: QWidget | None, kind: str, caption: str, filters: str) -> str:
    """A file chosen in an Open dialog that starts where this kind last left off; "" if cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, caption, str(start_folder(kind)), filters)
    if path:
        remember(kind, Path(path).parent)
    return path


def open_folder(parent: QWidget | None, kind: str, caption: str) -> str:
    """A folder chosen in a dialog that starts where this kind last left off: in the folder the chosen one is in, so
    that its neighbours (the next study) are at hand. "" if cancelled."""
    path = QFileDialog.getExistingDirectory(parent, caption, str(start_folder(kind)))
    if path:
        remember(kind, Path(path).parent)
    return path


def _remembered() -> dict:
    try:
        folders = json.loads((data_dir() / FOLDERS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: every dialog starts in documents
    return folders if isinstance(folders, dict) else {}
