"""The chat's answer being written: one question's engine request, its answer streamed into the transcript and
written to the store piece by piece (a crash keeps it up to the last piece), and how it ended, told in the chat's
status line."""

from __future__ import annotations

from dataclasses import asdict

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QProgressBar

from app.audit import AuditLog
from app.finish import finish_sentence
from app.store import Store, StoredConversation, StoreError, to_history
from app.ui.engine_runner import EngineRunner, Request
from app.ui.transcript import Transcript
from inference.prompt import Turn
from inference.sampling import SamplingSettings

STAGE_TEXT = {"loading": "Loading the model…", "prompt": "Reading the conversation…", "queued": "Starting…"}


class ChatAnswer(QObject):
    """The answer to a conversation's last turn (earlier turns are history: their cache is reused)."""

    ended = Signal(object)  # the conversation as stored (with the answer as shown, if the store could not take it)

    def __init__(self, runner: EngineRunner, store: Store, audit: AuditLog, conversation: StoredConversation,
                 sampling: SamplingSettings, transcript: Transcript, status: QLabel, progress: QProgressBar):
        super().__init__()
        self.runner, self.store, self.conversation = runner, store, conversation
        self.transcript, self.status, self.progress = transcript, status, progress
        last = conversation.turns[-1]
        self.turn_id = last.id
        turns = to_history(conversation)[:-1] + [Turn(last.question, len(last.image_shas))]
        shas = [sha for turn in conversation.turns for sha in turn.image_shas]
        self.request: Request = runner.request(turns, [conversation.images[sha].png for sha in shas], sampling,
                                               owner="chat", audit=audit, study_key=conversation.study_key,
                                               image_sha256=shas)
        self.request.waiting.connect(self._on_waiting)
        self.request.started.connect(lambda: self.status.setText("Starting…"))
        self.request.stage.connect(self._on_stage)
        self.request.text.connect(self._on_text)
        self.request.finished.connect(self._on_finished)
        self.request.failed.connect(self._on_failed)

    def start(self) -> None:
        self._save(self.store.record_settings, self.turn_id, asdict(self.request.sampling))
        self.transcript.start_answer(self.conversation)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Starting…")
        self.runner.submit(self.request)

    def stop(self) -> None:
        """Stop this question (waiting or being answered); another window's answer goes on."""
        self.status.setText("Stopping…")
        self.request.cancel()

    # --- the request's signals -------------------------------------------------------------------
    def _on_waiting(self, ahead: Request) -> None:
        self.status.setText(f"Waiting for the {ahead.owner} answer to finish…")

    def _on_stage(self, stage: str, done: int, total: int) -> None:
        if stage == "image":
            self.status.setText(f"Encoding image {done + 1} of {total}…")
        else:
            self.status.setText(STAGE_TEXT.get(stage, "Answering…"))
        if stage in ("prompt", "image") and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        else:
            self.progress.setRange(0, 0)

    def _on_text(self, piece: str) -> None:
        if not self.transcript.streamed.length:
            self.status.setText("Answering…")
            self.progress.hide()
        self.transcript.add_piece(piece)
        self._save(self.store.append_answer, self.turn_id, piece)

    def _on_finished(self, answer) -> None:
        saved = self._save(self.store.finish_answer, self.turn_id, answer.finish, answer_tokens=answer.token_ids,
                           timings=answer.timings, text=answer.text)
        speed = f" · {answer.timings['tokens_per_s']:.1f} tokens/s" if answer.timings.get("tokens_per_s") else ""
        self._end(answer.text, answer.finish, (finish_sentence(answer.finish) or f"Done{speed}.") if saved else None)

    def _on_failed(self, kind: str, message: str) -> None:
        finish = "context_full" if kind == "context_full" else "error"
        answer = self.transcript.streamed.text
        self._save(self.store.finish_answer, self.turn_id, finish, text=answer, note=message)
        if kind == "crashed":
            message += " Your conversation is kept: ask again, or regenerate, to continue."
        self._end(answer, finish, message)

    def _end(self, answer: str, finish: str, status: str | None) -> None:
        """Show the conversation as stored, or the answer as it streamed if the store could not take it."""
        conversation = self.conversation
        try:
            conversation = self.store.load(conversation.id)
        except StoreError as exc:
            status = f"Not saved: {exc}"
        last = conversation.turns[-1]
        if last.answer != answer:  # the disk was full: what is on screen stays whole
            last.answer, last.finish = answer, finish
        self.transcript.end_answer(conversation)
        self.progress.hide()
        if self.request.audit_error or status:
            self.status.setText(self.request.audit_error or status)
        self.ended.emit(conversation)

    def _save(self, write, *args, **kwargs) -> bool:
        """A store write; when it fails (a full disk) the user is told and the answer keeps streaming on screen."""
        try:
            write(*args, **kwargs)
            return True
        except StoreError as exc:
            self.status.setText(f"Not saved: {exc}. Free some space; the answer on screen is kept.")
            return False
