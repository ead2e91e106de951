"""The chat panel: questions about the images on screen, answers streamed from the local model.

Every question and every streamed piece of an answer is written to the store as it arrives, so a crash of
the engine or of the app keeps the conversation up to the last piece. Each finished question is recorded in
the audit log (hashes only).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QShortcut, QTextCursor, QTextDocument, QTextImageFormat
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.export import export_conversation
from app.finish import finish_phrase, finish_sentence
from app.settings import Settings
from app.store import Store, StoredConversation, StoreError, model_identity, to_history
from app.ui.engine_runner import EngineRunner
from inference.prompt import MAX_IMAGES_PER_CONVERSATION, Turn
from inference.store.manifest import Manifest

THUMB_WIDTH = 112


def suggested_questions(modality: str | None, language: str) -> list[str]:
    data = json.loads(resources.files("resources").joinpath("suggested_questions.json").read_text("utf-8"))
    language = language if language in ("en", "zh") else "en"
    return data.get(modality or "", {}).get(language, []) + data["any"][language]


def model_of(folder: Path | None) -> dict:
    """The model files' names and hashes, as the manifest records them."""
    return model_identity(Manifest.read(folder)) if folder is not None else {}


class ChatPanel(QWidget):
    attach_requested = Signal(bool)  # the window attaches what the viewer shows (True: only the zoomed region)
    conversations_changed = Signal()

    def __init__(self, runner: EngineRunner, store: Store, audit: AuditLog, settings: Settings, parent=None):
        super().__init__(parent)
        self.runner, self.store, self.audit, self.settings = runner, store, audit, settings
        self.model_folder: Path | None = None
        self.study_key: str | None = None
        self.study_info: dict | None = None
        self.modality: str | None = None
        self.conversation: StoredConversation | None = None
        self.pending_images: list[tuple[str, bytes]] = []  # (label, PNG) for the next question
        self._turn_id: int | None = None  # the turn being answered
        self._answer = ""
        self._answer_start = 0  # where the streamed answer begins in the transcript
        self._editing_turn: int | None = None
        self._render_timer = QTimer(self, singleShot=True, interval=50)
        self._render_timer.timeout.connect(self._render_answer)
        self._build()
        runner.stage.connect(self._on_stage)
        runner.text.connect(self._on_text)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        self._refresh_list()
        self._update_buttons()

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.search = QLineEdit(placeholderText="Search conversations")
        self.search.textChanged.connect(self._refresh_list)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new conversation about this study")
        self.new_button.clicked.connect(self.new_conversation)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.new_button)
        self.list = QListWidget()
        self.list.itemActivated.connect(lambda item: self.open_conversation(item.data(Qt.ItemDataRole.UserRole)))
        self.list.itemClicked.connect(lambda item: self.open_conversation(item.data(Qt.ItemDataRole.UserRole)))
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._list_menu)
        list_box = QWidget()
        list_layout = QVBoxLayout(list_box)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addLayout(top)
        list_layout.addWidget(self.list)

        self.transcript = QTextBrowser()
        self.transcript.setOpenExternalLinks(False)
        self.transcript.setOpenLinks(False)
        self.transcript.setPlaceholderText("Open a study, attach the view, and ask a question about it.")
        self.status = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(14)
        self.progress.setTextVisible(False)
        self.progress.hide()

        self.attachments = QLabel()
        self.attachments.setWordWrap(True)
        self.attach_button = QToolButton(text="Attach view")
        self.attach_button.setToolTip("Attach the image as shown in the viewer (what the model will see)")
        self.attach_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        attach_menu = QMenu(self.attach_button)
        attach_menu.addAction("Attach the zoomed region only", lambda: self.attach_requested.emit(True))
        attach_menu.addAction("Clear attachments", self.clear_attachments)
        self.attach_button.setMenu(attach_menu)
        self.attach_button.clicked.connect(lambda: self.attach_requested.emit(False))
        self.suggest_button = QToolButton(text="Suggestions")
        self.suggest_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.suggest_menu = QMenu(self.suggest_button)
        self.suggest_menu.aboutToShow.connect(self._fill_suggestions)
        self.suggest_button.setMenu(self.suggest_menu)
        attach_row = QHBoxLayout()
        attach_row.addWidget(self.attach_button)
        attach_row.addWidget(self.attachments, 1)
        attach_row.addWidget(self.suggest_button)

        self.input = QPlainTextEdit(placeholderText="Ask about the attached images…  (Ctrl+Enter to send)")
        self.input.setMaximumHeight(90)
        self.input.textChanged.connect(self._update_buttons)
        QShortcut(QKeySequence("Ctrl+Return"), self.input, activated=self.send)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip("Edit the last question and send it again")
        self.edit_button.clicked.connect(self.edit_last)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the last answer")
        self.copy_button.clicked.connect(self.copy_last)
        self.export_button = QToolButton(text="Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        for label, fmt in (("Markdown…", "md"), ("HTML…", "html"), ("PDF…", "pdf")):
            export_menu.addAction(label, lambda fmt=fmt: self.choose_export(fmt))
        self.export_button.setMenu(export_menu)
        buttons = QHBoxLayout()
        for button in (self.regenerate_button, self.edit_button, self.copy_button, self.export_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)

        self.label = QLabel(INTENDED_USE)
        self.label.setObjectName("intendedUse")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setStyleSheet("color: palette(placeholder-text); font-size: 11px;")

        chat_box = QWidget()
        chat = QVBoxLayout(chat_box)
        chat.setContentsMargins(0, 0, 0, 0)
        chat.addWidget(self.transcript, 1)
        chat.addWidget(self.progress)
        chat.addWidget(self.status)
        chat.addLayout(attach_row)
        chat.addWidget(self.input)
        chat.addLayout(buttons)
        chat.addWidget(self.label)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(list_box)
        splitter.addWidget(chat_box)
        splitter.setSizes([120, 600])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    # --- context from the window -----------------------------------------------------------------
    def set_model(self, folder: Path | None) -> None:
        self.model_folder = folder
        self.runner.set_model(folder, self.settings.engine_settings())
        self._update_buttons()

    def set_study(self, study_key: str | None, modality: str | None, study_info: dict | None) -> None:
        """The study on screen: conversations are listed for it; the newest one is reopened."""
        if study_key == self.study_key:
            return
        self.study_key, self.modality = study_key, modality
        self.study_info = study_info if self.settings.show_identifiers else None
        self.clear_attachments()
        self.conversation = None
        self._refresh_list()
        if self.list.count():
            self.open_conversation(self.list.item(0).data(Qt.ItemDataRole.UserRole))
        else:
            self._render()

    def add_attachment(self, png: bytes, label: str) -> bool:
        used = len(self.conversation.images) if self.conversation else 0
        if used + len(self.pending_images) >= MAX_IMAGES_PER_CONVERSATION:
            self.status.setText(f"At most {MAX_IMAGES_PER_CONVERSATION} images per conversation: start a new one "
                                f"to ask about more.")
            return False
        self.pending_images.append((label, png))
        self._show_attachments()
        return True

    def clear_attachments(self) -> None:
        self.pending_images.clear()
        self._show_attachments()

    def _show_attachments(self) -> None:
        if not self.pending_images:
            self.attachments.setText("<i>No image attached</i>")
        else:
            labels = ", ".join(label or f"image {i + 1}" for i, (label, _) in enumerate(self.pending_images))
            self.attachments.setText(f"{len(self.pending_images)} attached: {labels}")
        self._update_buttons()

    # --- conversations ---------------------------------------------------------------------------
    def _refresh_list(self) -> None:
        query = self.search.text().strip()
        summaries = self.store.search(query) if query else self.store.conversations(self.study_key)
        self.list.clear()
        for s in summaries:
            when = s.updated[:16].replace("T", " ")
            item = QListWidgetItem(f"{s.title}\n{when} · {s.n_turns} question(s)")
            item.setToolTip(s.preview)
            item.setData(Qt.ItemDataRole.UserRole, s.id)
            self.list.addItem(item)
        for row in range(self.list.count()):
            if self.conversation and self.list.item(row).data(Qt.ItemDataRole.UserRole) == self.conversation.id:
                self.list.setCurrentRow(row)

    def new_conversation(self) -> None:
        if self.runner.busy:
            return
        self.conversation = None
        self._editing_turn = None
        self.list.clearSelection()
        self._render()
        self._update_buttons()

    def open_conversation(self, conversation_id: int) -> None:
        if self.runner.busy:
            return
        self.conversation = self.store.load(conversation_id)
        self._editing_turn = None
        self._render()
        self._update_buttons()

    def delete_conversation(self, conversation_id: int) -> None:
        self.store.delete_conversation(conversation_id)
        if self.conversation and self.conversation.id == conversation_id:
            self.conversation = None
            self._render()
        self._refresh_list()
        self.conversations_changed.emit()
        self._update_buttons()

    def _list_menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None:
            return
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_conversation(conversation_id))
        menu.addAction("Delete…", lambda: self._confirm_delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))

    def _confirm_delete(self, conversation_id: int) -> None:
        answer = QMessageBox.question(self, "Delete conversation",
                                      "Delete this conversation and its images for good? This cannot be undone.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_conversation(conversation_id)

    # --- asking ----------------------------------------------------------------------------------
    def send(self) -> None:
        question = self.input.toPlainText().strip()
        if not question or self.runner.busy:
            return
        if self.model_folder is None:
            self.status.setText("No model is installed: open Models → Model manager to download, convert or "
                                "import one.")
            return
        try:
            self._store_question(question)
        except StoreError as exc:
            self.status.setText(f"The question was not sent: {exc}. Free some space and send it again.")
            return
        self.input.clear()
        self._show_attachments()
        self._refresh_list()
        self.conversations_changed.emit()
        self._ask_last()

    def _store_question(self, question: str) -> None:
        """The question (a new one, or the edit of the last) and its images, stored before the model is asked."""
        if self._editing_turn is not None:
            self.store.edit_question(self._editing_turn, question)
            self._editing_turn = None
        else:
            if self.conversation is None:
                # Titles go into lists and exports: the modality and the question, never a description or file
                # name (they can carry identifiers).
                short = question if len(question) <= 48 else question[:47].rstrip() + "…"
                self.conversation = self.store.load(self.store.create_conversation(
                    f"{self.modality or 'Image'} · {short}", study_key=self.study_key, study_info=self.study_info,
                    model=model_of(self.model_folder), settings=asdict(self.settings.sampling())))
            shas = [self.store.add_image(self.conversation.id, png, label) for label, png in self.pending_images]
            self.store.add_turn(self.conversation.id, question, shas)
            self.pending_images.clear()
        self.conversation = self.store.load(self.conversation.id)

    def _ask_last(self) -> None:
        """Answer the conversation's last turn: earlier turns are history (their cache is reused)."""
        conv = self.conversation
        last = conv.turns[-1]
        history = to_history(conv)[:-1]
        turns = history + [Turn(last.question, len(last.image_shas))]
        images = [conv.images[sha].png for turn in conv.turns for sha in turn.image_shas]
        self._turn_id, self._answer = last.id, ""
        self._render()
        self._set_busy(True, "Starting…")
        if not self.runner.ask(turns, images, self.settings.sampling()):
            self._set_busy(False)

    def stop(self) -> None:
        if self.runner.busy:
            self.status.setText("Stopping…")
            self.runner.stop()

    def regenerate(self) -> None:
        if self.runner.busy or not self.conversation or not self.conversation.turns:
            return
        self.store.reset_answer(self.conversation.turns[-1].id)
        self.conversation = self.store.load(self.conversation.id)
        self._ask_last()

    def edit_last(self) -> None:
        """Put the last question back into the input; sending it replaces the question and its answer."""
        if self.runner.busy or not self.conversation or not self.conversation.turns:
            return
        last = self.conversation.turns[-1]
        self._editing_turn = last.id
        self.input.setPlainText(last.question)
        self.input.setFocus()
        self.status.setText("Editing the last question: Send replaces it and its answer.")

    def copy_last(self) -> None:
        if self.conversation and self.conversation.turns:
            QGuiApplication.clipboard().setText(self.conversation.turns[-1].answer)
            self.status.setText("Answer copied.")

    def choose_export(self, fmt: str) -> None:
        if not self.conversation:
            return
        suffix = {"md": "Markdown (*.md)", "html": "HTML (*.html)", "pdf": "PDF (*.pdf)"}[fmt]
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", f"conversation.{fmt}", suffix)
        if path:
            self.export(Path(path), fmt)

    def export(self, path: Path, fmt: str) -> None:
        try:
            export_conversation(self.store.load(self.conversation.id), path, fmt,
                                include_identifiers=self.settings.show_identifiers)
        except OSError as exc:
            self.status.setText(f"Export failed: {exc}")
            return
        note = "" if self.settings.show_identifiers else " (de-identified)"
        self.status.setText(f"Exported to {path}{note}.")

    # --- engine events ---------------------------------------------------------------------------
    def _on_stage(self, stage: str, done: int, total: int) -> None:
        if self._turn_id is None:
            return
        text = {"loading": "Loading the model…", "image": f"Encoding image {done + 1} of {total}…",
                "prompt": "Reading the conversation…", "queued": "Starting…"}.get(stage, "Answering…")
        self.status.setText(text)
        if stage == "prompt" and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        elif stage == "image" and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        else:
            self.progress.setRange(0, 0)

    def _on_text(self, piece: str) -> None:
        if self._turn_id is None:
            return
        if not self._answer:
            self.status.setText("Answering…")
            self.progress.hide()
        self._answer += piece
        self._save(self.store.append_answer, self._turn_id, piece)
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _on_finished(self, answer) -> None:
        if self._turn_id is None:
            return
        turn_id, self._turn_id = self._turn_id, None
        saved = self._save(self.store.finish_answer, turn_id, answer.finish, answer_tokens=answer.token_ids,
                           timings=answer.timings, text=answer.text)
        self._record_audit(answer.text, answer.finish)
        self._reload(answer.text, answer.finish)
        self._set_busy(False)
        timings = answer.timings or {}
        speed = f" · {timings['tokens_per_s']:.1f} tokens/s" if timings.get("tokens_per_s") else ""
        if saved:
            self.status.setText(finish_sentence(answer.finish) or f"Done{speed}.")
        self._render()
        self._refresh_list()

    def _on_failed(self, kind: str, message: str) -> None:
        if self._turn_id is None:  # another window's request (the runner is shared)
            return
        turn_id, self._turn_id = self._turn_id, None
        finish = "context_full" if kind == "context_full" else "error"
        self._save(self.store.finish_answer, turn_id, finish, text=self._answer)
        self._record_audit(self._answer, finish)
        self._reload(self._answer, finish)
        self._render()
        self._set_busy(False)
        if kind == "crashed":
            message += " Your conversation is kept: ask again, or regenerate, to continue."
        self.status.setText(message)

    def _reload(self, answer: str, finish: str) -> None:
        """The conversation as stored; if the store could not take the answer, the answer as it streamed."""
        try:
            self.conversation = self.store.load(self.conversation.id)
        except StoreError as exc:
            self.status.setText(f"Not saved: {exc}")
        last = self.conversation.turns[-1]
        if last.answer != answer:  # the disk was full: what is on screen stays whole
            last.answer, last.finish = answer, finish

    def _save(self, write, *args, **kwargs) -> bool:
        """A store write; when it fails (a full disk) the user is told and the answer keeps streaming on screen."""
        try:
            write(*args, **kwargs)
            return True
        except StoreError as exc:
            self.status.setText(f"Not saved: {exc}. Free some space; the answer on screen is kept.")
            return False

    def _record_audit(self, answer: str, finish: str) -> None:
        conv, turn = self.conversation, self.conversation.turns[-1]
        try:
            self._write_audit(conv, turn, answer, finish)
        except OSError as exc:
            self.status.setText(f"The audit log could not be written: {exc}")

    def _write_audit(self, conv, turn, answer: str, finish: str) -> None:
        self.audit.record_question(
            study_key=conv.study_key, image_sha256=[s for t in conv.turns for s in t.image_shas],
            model=model_of(self.model_folder), settings=asdict(self.settings.sampling()),
            question=turn.question, answer=answer, finish=finish)

    # --- display ---------------------------------------------------------------------------------
    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
        if text:
            self.status.setText(text)
        self._update_buttons(busy)

    def _update_buttons(self, busy: bool | None = None) -> None:
        busy = self.runner.busy if busy is None else busy
        has_turns = bool(self.conversation and self.conversation.turns)
        self.send_button.setEnabled(not busy and bool(self.input.toPlainText().strip()))
        self.stop_button.setEnabled(busy)
        for button in (self.regenerate_button, self.edit_button, self.copy_button, self.export_button):
            button.setEnabled(not busy and has_turns)
        self.new_button.setEnabled(not busy)
        self.attach_button.setEnabled(not busy)

    def _fill_suggestions(self) -> None:
        self.suggest_menu.clear()
        for question in suggested_questions(self.modality, self.settings.language):
            self.suggest_menu.addAction(question, lambda q=question: self.input.setPlainText(q))

    def transcript_text(self) -> str:
        return self.transcript.toPlainText()

    def _render(self) -> None:
        """Write the whole conversation into the transcript; the streamed answer is updated in place after."""
        doc = self.transcript.document()
        doc.clear()
        cursor = QTextCursor(doc)
        conv = self.conversation
        if conv is None:
            return
        for turn in conv.turns:
            cursor.insertHtml("<p style='margin-top:10px'><b>You</b></p>")
            cursor.insertBlock()
            for sha in turn.image_shas:
                url = f"image:{sha}"
                doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(url),
                                QImage.fromData(QByteArray(conv.images[sha].png)))
                fmt = QTextImageFormat()
                fmt.setName(url)
                fmt.setWidth(THUMB_WIDTH)
                fmt.setHeight(THUMB_WIDTH)
                cursor.insertImage(fmt)
                cursor.insertText(" ")
            if turn.image_shas:
                cursor.insertBlock()
            cursor.insertText(turn.question)
            cursor.insertBlock()
            cursor.insertHtml("<p style='margin-top:6px'><b>Model</b></p>")
            cursor.insertBlock()
            if turn.id == self._turn_id:
                self._answer_start = cursor.position()
                cursor.insertMarkdown(self._answer or "…")
            else:
                cursor.insertMarkdown(turn.answer or " ")
                note = finish_phrase(turn.finish)
                cursor.insertBlock()
                if note:
                    cursor.insertHtml(f"<i>({note})</i> ")
                cursor.insertHtml(f"<span style='color:gray; font-size:small'>{INTENDED_USE}</span>")
            cursor.insertBlock()
        self._scroll_to_end()

    def _render_answer(self) -> None:
        """Replace only the streamed answer (the end of the transcript) with its latest text."""
        if self._turn_id is None:
            return
        at_end = self._at_end()
        cursor = QTextCursor(self.transcript.document())
        cursor.setPosition(self._answer_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.insertMarkdown(self._answer)
        if at_end:
            self._scroll_to_end()

    def _at_end(self) -> bool:
        bar = self.transcript.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _scroll_to_end(self) -> None:
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
