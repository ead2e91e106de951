"""Exporting a chat conversation: where the dialog starts, the file name it suggests, the export itself in the
background (a long answer takes seconds to lay out as a PDF)."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from app.export import export_conversation
from app.store import StoredConversation
from app.ui.background import Task, run_in_background
from app.ui.file_dialogs import documents_folder
from app.ui.status_line import MessageLine

FORMATS = {"md": "Markdown (*.md)", "html": "HTML (*.html)", "pdf": "PDF (*.pdf)"}


def export_folder() -> Path:
    """Where the export dialog starts: the user's documents folder (never a shared temporary folder)."""
    return documents_folder()


def export_name(conversation: StoredConversation) -> str:
    """A file name from the conversation's title and the day it started: "Chest CT 2026-12-03"."""
    title = re.sub(r'[\\/:*?"<>|\x00-\x1f\s]+', " ", conversation.title).strip(" .") or "conversation"
    return f"{title[:80].strip()} {conversation.created[:10]}".strip()


def choose_export_path(parent: QWidget, conversation: StoredConversation, fmt: str) -> Path | None:
    suggested = export_folder() / f"{export_name(conversation)}.{fmt}"
    path, _ = QFileDialog.getSaveFileName(parent, "Export conversation", str(suggested), FORMATS[fmt])
    return Path(path) if path else None


def export_in_background(conversation: StoredConversation, path: Path, fmt: str, identifiers: bool,
                         status: MessageLine) -> Task:
    status.setText(f"Exporting to {path}…")
    note = "" if identifiers else " (de-identified)"
    return run_in_background(
        lambda cancel: export_conversation(conversation, path, fmt, include_identifiers=identifiers),
        on_done=lambda _: status.flash(f"Exported to {path}{note}."),
        on_failed=lambda exc: status.setText(f"Export failed: {exc}"))
