"""Practice mode's "Model's answer" card: the model asked about the case on screen, its answer streamed here.

Each question is one engine request (app.ui.engine_runner), owned by this card: leaving the case cancels it (its
answer is not shown for another case), Stop cancels only it, and a question that has to wait (for the chat's
answer, or for a stopped one to end) says so. Its audit record names the model and settings at question time.
While the trainee reads a case not yet answered, the engine prepares its images, so the model's answer starts at
once when the trainee reveals theirs.
"""

from __future__ import annotations

import hashlib
from functools import partial

from PySide6.QtCore import Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QTextBrowser, QVBoxLayout

from app.audit import AuditLog
from app.finish import finish_sentence
from app.imaging import ImageOpenError
from app.practice import Deck, Item, build_question, image_png, model_result
from app.settings import Settings
from app.ui.answer_view import StreamedAnswer, insert_answer
from app.ui.engine_runner import EngineRunner, Preparation, Request
from app.ui.practice_widgets import label, set_tone
from inference.prompt import Turn
from inference.sampling import SamplingSettings

NO_MODEL_TEXT = ("No model is installed, so there is no model answer to compare with. "
                 "Your read and the deck's reference answer are still here.")
NOT_ASKED_TEXT = "Not asked. Press Ask again for the model's answer."
STAGE_TEXT = {"loading": "Loading the model…", "image": "Reading the image…", "prompt": "Reading the question…",
              "queued": "Starting…", "generating": "Answering…"}


class ModelAnswer(QFrame):
    answered = Signal(object, int, str)  # deck, item number, the model's whole answer (not a stopped one)

    def __init__(self, runner: EngineRunner, audit: AuditLog | None, sampling: SamplingSettings | None):
        super().__init__()
        self.runner = runner
        self.audit = audit  # each question is recorded (hashes only), as in the chat
        self.sampling = sampling  # None: the user's settings at the time of each question
        self.item: Item | None = None  # the case on screen
        self.request: Request | None = None  # the question about it, until its answer has ended
        self.preparation: Preparation | None = None  # its images, read while the trainee reads the case
        self.setObjectName("card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.ask_button = QPushButton("Ask again")
        head = QHBoxLayout()
        head.addWidget(label("Model's answer", "heading"), 1)
        head.addWidget(self.ask_button)
        head.addWidget(self.stop_button)
        self.status = label("", "muted")
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.streamed = StreamedAnswer(self.view)
        self.choice_label = label()
        layout.addLayout(head)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.choice_label)

    def show_case(self, item: Item | None, text: str = "", status: str = "", prepare: bool = True) -> None:
        """A case comes on screen: the question about the one before is cancelled; `text` is a saved answer. A case
        without one is prepared: its images are read by the model while the trainee reads them."""
        self.leave()
        self.item = item
        self.show_text(text, status)
        if item is not None and not text and prepare:
            self._prepare(item)

    def leave(self) -> None:
        """The trainee leaves the case: its question is cancelled, and what is left of its answer not shown."""
        request, self.request = self.request, None
        if request is not None:
            self.streamed.stop()
            request.cancel()
        preparation, self.preparation = self.preparation, None
        if preparation is not None:
            preparation.discard()

    def _prepare(self, item: Item) -> None:
        if self.runner.folder is None:
            return
        try:
            images = [image_png(path) for path in item.images]
        except ImageOpenError:
            return  # asking says what is wrong with the image
        if images:
            self.preparation = self.runner.prepare([Turn(build_question(item), n_images=len(images))], images,
                                                   owner="practice")

    def ask(self, deck: Deck, item: Item) -> None:
        """Ask the model about the case (any question still running for it is cancelled first)."""
        self.show_case(item, prepare=False)
        try:
            images = [image_png(path) for path in item.images]
        except ImageOpenError as exc:
            self.show_text("", f"The image could not be read for the model: {exc}")
            return
        request = self.runner.request([Turn(build_question(item), n_images=len(images))], images,
                                      self.sampling or Settings.load().sampling(), owner="practice",
                                      audit=self.audit, study_key=deck.sha256,
                                      image_sha256=[hashlib.sha256(png).hexdigest() for png in images])
        request.waiting.connect(partial(self._on_waiting, request))
        request.started.connect(partial(self._on_stage, request, "queued", 0, 0))
        request.stage.connect(partial(self._on_stage, request))
        request.text.connect(partial(self._on_text, request))
        request.finished.connect(partial(self._on_finished, request, deck, item.number))
        request.failed.connect(partial(self._on_failed, request))
        self.request = request
        self.streamed.reset()
        self.show_text("", "Starting…", busy=True)
        self.runner.submit(request)

    def stop(self) -> None:
        if self.request is not None:
            self.status.setText("Stopping…")
            self.request.cancel()

    # --- the request's signals (a request left behind with its case is not shown) -----------------
    def _on_waiting(self, request: Request, ahead: Request) -> None:
        if request is self.request:
            self.status.setText("Waiting for the previous answer to stop…" if ahead.owner == request.owner
                                else f"Waiting for the {ahead.owner} answer to finish…")

    def _on_stage(self, request: Request, stage: str, _done: int, _total: int) -> None:
        if request is self.request and not self.streamed.length:
            self.status.setText(STAGE_TEXT.get(stage, "Working…"))

    def _on_text(self, request: Request, piece: str) -> None:
        if request is not self.request:
            return
        if not self.streamed.length:
            self.status.setText("Answering…")
        self.streamed.add(piece)

    def _on_finished(self, request: Request, deck: Deck, number: int, answer) -> None:
        if answer.finish != "cancelled" and answer.text.strip():
            self.answered.emit(deck, number, answer.text)  # saved with its case, shown or not
        if request is self.request:
            self.request = None
            self.streamed.stop()
            if not request.ran:
                self.show_text("", NOT_ASKED_TEXT)
            else:
                self.show_text(answer.text, request.audit_error or finish_sentence(answer.finish))

    def _on_failed(self, request: Request, kind: str, message: str) -> None:
        if request is self.request:
            self.request = None
            self.streamed.stop()
            if kind == "no_model":
                self.show_text("", NO_MODEL_TEXT)
            else:
                self.show_text(self.streamed.text, request.audit_error or f"No answer: {message}")

    # --- display ---------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The answer on screen, as the model wrote it (the view shows it rendered)."""
        return self.streamed.text

    def show_text(self, text: str, status: str, busy: bool = False) -> None:
        self.streamed.reset(text)
        self.view.clear()
        if text:
            insert_answer(QTextCursor(self.view.document()), text)
        self.status.setText(status)
        self.status.setVisible(bool(status))
        self.stop_button.setVisible(busy)
        self.ask_button.setVisible(not busy)
        self.show_score(text if not busy else "")

    def show_score(self, text: str) -> None:
        """The model's pick of a multiple-choice case, scored like the trainee's (right / wrong)."""
        item = self.item
        choice, correct = model_result(item, text) if item is not None else (None, None)
        if item is None or not item.is_multiple_choice or not text.strip():
            set_tone(self.choice_label, "muted")
            self.choice_label.clear()
        elif choice is None:
            set_tone(self.choice_label, "wrong" if correct is False else "muted")
            self.choice_label.setText("The model's reply names no option" + (": not correct." if correct is False
                                                                               else "."))
        elif correct is None:
            set_tone(self.choice_label, "muted")
            self.choice_label.setText(f"The model chose {item.option_label(choice)}.")
        else:
            set_tone(self.choice_label, "right" if correct else "wrong")
            self.choice_label.setText(f"The model chose {item.option_label(choice)}: " + (
                "correct." if correct else f"not correct (the deck's answer is {item.reference_text()})."))
