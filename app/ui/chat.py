"""The chat panel: questions about the images on screen, answers streamed from the local model.

Every question and every streamed piece of an answer is written to the store as it arrives, so a crash of
the engine or of the app keeps the conversation up to the last piece. Each question is one engine request
(app.ui.engine_runner): it waits its turn while another window's question is answered, its Stop stops only it,
and its audit record (hashes only) names the model and settings of the moment it was asked.

While a question is typed, the engine prepares the conversation up to where it goes (earlier turns, the images
just attached), so that Send processes only the question's own tokens; the attachment line says how far it got.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.settings import Settings
from app.store import Store, StoredConversation, StoreError
from app.suggestions import suggested_questions
from app.ui.attachments import Attachment, AttachmentsRow, model_input_text
from app.ui.background import Task
from app.ui.chat_answer import ChatAnswer
from app.ui.chat_edit import (
    before_question,
    confirm_branch,
    editing_note,
    later_turns,
    question_title,
    title_after_edit,
    turn_with_id,
)
from app.ui.chat_export import choose_export_path, export_in_background
from app.ui.chat_input import QuestionBox
from app.ui.conversation_list import ConversationList
from app.ui.engine_runner import EngineRunner, Preparation, Request, model_of
from app.ui.states_clearing import StatesClearing
from app.ui.status_line import MessageLine
from app.ui.transcript import Transcript
from inference.prompt import MAX_IMAGES_PER_CONVERSATION, Turn


class ChatPanel(QWidget):
    attach_requested = Signal(bool)  # the window attaches what the viewer shows (True: only the zoomed region)
    teaching_case_requested = Signal()  # the window exports the conversation as a de-identified teaching case
    practice_case_requested = Signal()  # the window adds a question of the conversation to a practice deck
    conversations_changed = Signal()

    def __init__(self, runner: EngineRunner, store: Store, audit: AuditLog, settings: Settings, parent=None):
        super().__init__(parent)
        self.runner, self.store, self.audit, self.settings = runner, store, audit, settings
        self.model_folder: Path | None = None
        self.study_key: str | None = None
        self.study_info: dict | None = None
        self.modality: str | None = None
        self.conversation: StoredConversation | None = None
        self.pending_images: list[Attachment] = []  # for the next question
        self.answer: ChatAnswer | None = None  # the answer being written
        self.preparation: Preparation | None = None  # the conversation prepared for the question being typed
        self._asked_in_study: str | None = None  # the study on screen when it was asked
        self._editing_turn: int | None = None
        self._typing = False  # the question box holds text (its first keystroke may start the model loading)
        self._build()
        self.conversations.refresh()
        self._update_buttons()

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.conversations = ConversationList(self.store)
        self.conversations.opened.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.delete_confirmed.connect(self.delete_conversation)
        self.conversations.export_requested.connect(lambda cid, fmt: self.choose_export(fmt, cid))
        self.transcript = Transcript()
        self.transcript.copy_requested.connect(self.copy_answer)
        self.transcript.edit_requested.connect(self.edit_question)
        self.transcript.regenerate_requested.connect(self.regenerate)
        self.status = MessageLine()
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(14)
        self.progress.setTextVisible(False)
        self.progress.hide()

        self.attachments = AttachmentsRow()  # thumbnails under the question box, each removable
        self.attachments.remove_requested.connect(self.remove_attachment)
        self.preparation_status = self.attachments.preparation_status
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
        attach_row.addStretch(1)
        attach_row.addWidget(self.suggest_button)

        self.input = QuestionBox(self.settings.enter_sends)
        self.input.setMaximumHeight(90)
        self.input.textChanged.connect(self._update_buttons)
        self.input.textChanged.connect(self._on_typing)
        self.input.send_requested.connect(self.send)
        self.input.cancel_requested.connect(self.cancel_edit)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip("Edit the last question and send it again (any question: right-click it, or its "
                                    "Edit link)")
        self.edit_button.clicked.connect(self.edit_last)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the last answer")
        self.copy_button.clicked.connect(self.copy_last)
        self.export_button = QToolButton(text="Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        for label, fmt in (("Markdown…", "md"), ("HTML…", "html"), ("PDF…", "pdf")):
            export_menu.addAction(label, lambda fmt=fmt: self.choose_export(fmt))
        export_menu.addSeparator()
        export_menu.addAction("Teaching case (de-identified DICOM)…", self.teaching_case_requested.emit)
        export_menu.addAction("Make practice case…", self.practice_case_requested.emit)
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
        chat.addWidget(self.attachments)
        chat.addLayout(buttons)
        chat.addWidget(self.label)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.conversations)
        splitter.addWidget(chat_box)
        splitter.setSizes([120, 600])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    # --- context from the window -----------------------------------------------------------------
    def set_model(self, folder: Path | None) -> None:
        """The model for the questions asked from now on (a question being answered keeps its own)."""
        self.model_folder = folder
        self.runner.set_model(folder, self.settings.engine_settings())
        self._update_buttons()
        self._prepare()

    def apply_settings(self) -> None:
        """The settings changed: the send key follows at once."""
        self.input.set_enter_sends(self.settings.enter_sends)

    def set_study(self, study_key: str | None, modality: str | None, study_info: dict | None) -> None:
        """The study on screen: conversations are listed for it; the newest one is reopened."""
        if study_key == self.study_key:
            return
        self.study_key, self.modality = study_key, modality
        self.study_info = study_info if self.settings.show_identifiers else None
        self.pending_images.clear()
        self._show_attachments()
        newest = self.conversations.show_study(study_key)
        if self.answer is None:  # an answer being written keeps its conversation on screen until it ends
            self._show_newest(newest)

    def _show_newest(self, conversation_id: int | None) -> None:
        self.conversation = None
        if conversation_id is not None:
            self.open_conversation(conversation_id)
        else:
            self.status.clear()  # it spoke of the conversation that was on screen
            self.conversations.set_current(None)
            self.transcript.show_conversation(None)
            self._update_buttons()
            self._prepare()

    def add_attachment(self, png: bytes, label: str, zoomed: bool = False) -> bool:
        """Attach an image to the next question (`zoomed`: only the zoomed region of the view)."""
        used = sum(len(turn.image_shas) for turn in self.conversation.turns) if self.conversation else 0
        if used + len(self.pending_images) >= MAX_IMAGES_PER_CONVERSATION:
            self.status.setText(f"At most {MAX_IMAGES_PER_CONVERSATION} images per conversation: start a new one "
                                f"to ask about more.")
            return False
        self.pending_images.append(Attachment(label, png, zoomed))
        self._show_attachments()
        self._prepare()
        return True

    def remove_attachment(self, index: int) -> None:
        """Remove one attachment: what the engine prepared with it is discarded, the others are prepared again."""
        if 0 <= index < len(self.pending_images):
            del self.pending_images[index]
            self._show_attachments()
            self._prepare()

    def clear_attachments(self) -> None:
        self.pending_images.clear()
        self._show_attachments()
        self._prepare()

    def _show_attachments(self) -> None:
        model_inputs = [model_input_text(self.model_folder, a.png, self.settings) for a in self.pending_images]
        self.attachments.show_attachments(self.pending_images, model_inputs)
        self._update_buttons()

    # --- conversations ---------------------------------------------------------------------------
    def new_conversation(self) -> None:
        if self.request is not None:
            return
        self.conversation = None
        self._editing_turn = None
        self.status.clear()  # it spoke of the conversation that was on screen
        self.conversations.set_current(None)
        self.transcript.show_conversation(None)
        self._update_buttons()
        self._prepare()

    def open_conversation(self, conversation_id: int) -> None:
        if self.request is not None:
            return
        self.conversation = self.store.load(conversation_id)
        self._editing_turn = None
        self.status.clear()  # it spoke of the conversation that was on screen
        self.conversations.set_current(conversation_id)
        self.transcript.show_conversation(self.conversation)
        self._update_buttons()
        self._prepare()

    def delete_conversation(self, conversation_id: int) -> StatesClearing | None:
        """Delete the conversation, and the engine's saved states of its images (overwritten). Those go through the
        engine runner, when the engine is not writing one (it writes a state just after an answer). Returns that
        clearing, if the conversation had images."""
        if self.request is not None and self.conversation and self.conversation.id == conversation_id:
            self.status.setText("This conversation's question is still being answered: stop it first.")
            return None
        current = bool(self.conversation and self.conversation.id == conversation_id)
        if current:
            self._drop_preparation()  # its state is not to be saved now
        deleted = self.store.load(conversation_id)
        pngs = [image.png for image in deleted.images.values()]
        self.store.delete_conversation(conversation_id)
        clearing = self.runner.clear_saved_states(pngs) if pngs else None
        if current:
            self.conversation, self._editing_turn = None, None
            self.status.flash(f"Deleted “{deleted.title}”.")
            self.transcript.show_conversation(None)
            self._prepare()
        self.conversations.refresh()
        self.conversations_changed.emit()
        self._update_buttons()
        return clearing

    # --- asking ----------------------------------------------------------------------------------
    def send(self) -> None:
        question = self.input.toPlainText().strip()
        if not question or self.request is not None:
            return
        if self.model_folder is None:
            self.status.setText("No model is installed: open Models → Model manager to download, convert or "
                                "import one.")
            return
        if self._editing_turn is not None and \
                not confirm_branch(self, later_turns(self.conversation, self._editing_turn)):
            return
        try:
            self._store_question(question)
        except StoreError as exc:
            self.status.setText(f"The question was not sent: {exc}. Free some space and send it again.")
            return
        self.input.clear()
        self._show_attachments()
        self.conversations.current_id = self.conversation.id
        self.conversations.refresh()
        self.conversations_changed.emit()
        self._ask_last()

    def _store_question(self, question: str) -> None:
        """The question (a new one, or the edit of the last) and its images, stored before the model is asked."""
        if self._editing_turn is not None:
            self.store.edit_question(self._editing_turn, question,
                                     title_after_edit(self.conversation, self._editing_turn, question))
            self._editing_turn = None
        else:
            if self.conversation is None:
                self.conversation = self.store.load(self.store.create_conversation(
                    question_title(self.modality, question), study_key=self.study_key, study_info=self.study_info,
                    model=model_of(self.model_folder), settings=asdict(self.settings.sampling())))
            shas = [self.store.add_image(self.conversation.id, a.png, a.label) for a in self.pending_images]
            self.store.add_turn(self.conversation.id, question, shas)
            self.pending_images.clear()
        self.conversation = self.store.load(self.conversation.id)

    def _ask_last(self) -> None:
        self._drop_preparation()  # the question takes over from where the preparation got
        # A new seed for every answer: a regenerate is a new sample (greedy stays greedy).
        self.answer = ChatAnswer(self.runner, self.store, self.audit, self.conversation,
                                 self.settings.sampling().with_new_seed(), self.transcript, self.status, self.progress)
        self.answer.ended.connect(self._answer_ended)
        self._asked_in_study = self.study_key
        self._update_buttons()
        self.answer.start()

    def _answer_ended(self, conversation: StoredConversation) -> None:
        self.answer, self.conversation = None, conversation
        self._update_buttons()
        if self.study_key != self._asked_in_study:  # another study was opened meanwhile: now its conversations
            self._show_newest(self.conversations.show_study(self.study_key))
        else:
            self.conversations.refresh()
        if self.pending_images:  # attached while the answer was written
            self._prepare()

    # --- preparing the conversation while the question is typed --------------------------------
    def _prepare(self) -> None:
        """Have the engine process the conversation up to where the next question goes, now (it runs when no
        question waits). Whatever changed (an image attached or removed, another conversation) replaces the
        preparation before."""
        self._drop_preparation()
        if self.answer is not None or self.model_folder is None:
            return  # a question being answered: its answer leaves the conversation in the engine anyway
        history, images, own = before_question(self.conversation, [a.png for a in self.pending_images],
                                               self._editing_turn)
        if not history and not own and not self.input.toPlainText().strip():
            return  # nothing comes before a first question without images; once one is typed, the model loads
        self.preparation = self.runner.prepare(history + [Turn("", own)], images, owner="chat")
        preparation = self.preparation
        preparation.stage.connect(lambda stage, done, total: self._on_preparation_stage(preparation, stage, done,
                                                                                         total))
        preparation.ended.connect(lambda outcome: self._on_preparation_ended(preparation, outcome))

    def _on_typing(self) -> None:
        # The first keystroke of a question without anything to prepare still starts the model loading, so that
        # a first question's Send rarely waits for it (with the model loaded, this preparation ends at once).
        typing = bool(self.input.toPlainText().strip())
        if typing and not self._typing and self.preparation is None:
            self._prepare()
        self._typing = typing

    def _drop_preparation(self) -> None:
        preparation, self.preparation = self.preparation, None
        if preparation is not None:
            preparation.discard()
        self.preparation_status.clear()

    def _on_preparation_stage(self, preparation: Preparation, stage: str, done: int, total: int) -> None:
        if preparation is not self.preparation or not (self.pending_images or stage == "loading"):
            return
        if stage == "prompt" and total:
            self.preparation_status.setText(f"preparing image… {100 * done // total} %")
        else:
            self.preparation_status.setText("loading the model…" if stage == "loading" else "preparing image…")

    def _on_preparation_ended(self, preparation: Preparation, outcome: str) -> None:
        if preparation is not self.preparation:
            return
        self.preparation = None
        ready = outcome == "ready" and bool(self.pending_images)
        self.preparation_status.setText("ready" if ready else "")
        self.preparation_status.setToolTip("The attached images are read: Send answers at once" if ready else "")

    @property
    def request(self) -> Request | None:
        """This panel's question to the engine, until its answer has ended."""
        return self.answer.request if self.answer is not None else None

    def stop(self) -> None:
        """Stop this panel's question (waiting or being answered); another window's answer goes on."""
        if self.answer is not None:
            self.answer.stop()

    def regenerate(self) -> None:
        if self.request is not None or not self.conversation or not self.conversation.turns:
            return
        self.store.reset_answer(self.conversation.turns[-1].id)
        self.conversation = self.store.load(self.conversation.id)
        self._ask_last()

    def edit_last(self) -> None:
        if self.conversation and self.conversation.turns:
            self.edit_question(self.conversation.turns[-1].id)

    def edit_question(self, turn_id: int) -> None:
        """Put a question back into the box; Send replaces it, and the conversation goes on from there (see
        app.ui.chat_edit). The engine meanwhile prepares the conversation up to that question."""
        turn = turn_with_id(self.conversation, turn_id)
        if turn is None or self.request is not None:
            return
        self._editing_turn = turn.id
        self.input.setPlainText(turn.question)
        self.input.setFocus()
        self.status.setText(editing_note(self.conversation, turn))
        self._prepare()

    def cancel_edit(self) -> None:
        if self._editing_turn is not None:
            self._editing_turn = None
            self.input.clear()
            self.status.clear()
            self._prepare()

    def copy_last(self) -> None:
        if self.conversation and self.conversation.turns:
            self.copy_answer(self.conversation.turns[-1].id)

    def copy_answer(self, turn_id: int) -> None:
        """The answer as the model wrote it, as plain text (nothing in it is read as HTML)."""
        turn = turn_with_id(self.conversation, turn_id)
        if turn is not None and turn.answer:
            QGuiApplication.clipboard().setText(turn.answer)
            self.status.flash("Answer copied.")

    def choose_export(self, fmt: str, conversation_id: int | None = None) -> None:
        """Export a conversation (the one on screen unless another is named), the file named after its title."""
        if conversation_id is None and not self.conversation:
            return
        conversation = self.store.load(conversation_id if conversation_id is not None else self.conversation.id)
        if path := choose_export_path(self, conversation, fmt):
            self.export(path, fmt, conversation.id)

    def export(self, path: Path, fmt: str, conversation_id: int | None = None) -> Task:
        """Export the conversation (the one on screen unless another is named) in the background."""
        conversation = self.store.load(conversation_id if conversation_id is not None else self.conversation.id)
        return export_in_background(conversation, path, fmt, self.settings.show_identifiers, self.status)

    # --- display ---------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.request is not None
        has_turns = bool(self.conversation and self.conversation.turns)
        self.send_button.setEnabled(not busy and bool(self.input.toPlainText().strip()))
        self.stop_button.setEnabled(busy)
        for button in (self.regenerate_button, self.edit_button, self.copy_button, self.export_button):
            button.setEnabled(not busy and has_turns)
        self.conversations.new_button.setEnabled(not busy)
        self.attach_button.setEnabled(not busy)

    def _fill_suggestions(self) -> None:
        self.suggest_menu.clear()
        for question in suggested_questions(self.modality, self.settings.language):
            self.suggest_menu.addAction(question, lambda q=question: self.input.setPlainText(q))

    def transcript_text(self) -> str:
        return self.transcript.toPlainText()
