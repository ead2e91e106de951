"""What a window hands the engine runner (app/ui/engine_runner.py): a `Request` (one question, until its answer has
ended) and a `Preparation` (a conversation processed up to where its next question goes). Each owns its signals and
its cancel; the runner runs them one at a time on its engine client thread."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.audit import AskedQuestion, AuditLog
from app.store import model_identity
from inference.engine import PreparedImage
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.store.manifest import Manifest

if TYPE_CHECKING:
    from app.ui.engine_runner import EngineRunner


def model_of(folder: Path | None) -> dict:
    """The model files' names and hashes, as the manifest records them."""
    if folder is None:
        return {}
    try:
        return model_identity(Manifest.read(folder))
    except (OSError, ValueError, TypeError, KeyError):  # a folder without a readable manifest: the request says so
        return {"name": Path(folder).name}


class Request(QObject):
    """One question to the engine, from the moment it is asked until its answer has ended.

    It ends with exactly one `finished` or `failed`, also when cancelled. Cancelled while it waits, it never reaches
    the engine and finishes with an empty answer (finish "cancelled", `ran` False); cancelled while it runs, the
    partial answer arrives through `finished`. Its audit record, if it has one, is written before that last signal
    (`audit_error` says why it could not be)."""

    waiting = Signal(object)  # the Request that runs now (or will run first): this one waits for it
    started = Signal()  # its turn has come: the engine takes it
    stage = Signal(str, int, int)  # "loading" | "queued" | "image" | "prompt" | "generating", done, total
    text = Signal(str)  # the next streamed piece of the answer (pieces are batched, see TEXT_BATCH_S)
    finished = Signal(object)  # inference.engine.Answer
    failed = Signal(str, str)  # kind ("no_model" | "model_file" | "crashed" | "context_full" | "error"), message

    def __init__(self, runner: EngineRunner, owner: str, turns: list[Turn], images: list[bytes | PreparedImage],
                 sampling: SamplingSettings | None, asked: AskedQuestion | None, audit: AuditLog | None):
        super().__init__()  # owned by whoever holds it: the runner until it ends, its window while it cares
        self.owner = owner  # who asked, in words: "chat", "practice" (a waiting window names who it waits for)
        self.turns, self.images, self.sampling = list(turns), list(images), sampling
        self.folder, self.engine_settings = runner.folder, runner.settings  # the model answering it
        self.asked, self.audit = asked, audit
        self.audit_error: str | None = None
        self.state = "new"  # new -> queued -> running -> ended; a cancelled waiting request goes queued -> ended
        self.ran = False
        self._runner = runner
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop this request, and only this one. It still ends with its one finished (or failed) signal."""
        self._runner._cancel(self)

    def _disconnect_all(self) -> None:
        """After its end: a slot that holds the request (a lambda, a partial) would otherwise keep it, its images
        included, alive for as long as the app runs."""
        for signal in (self.waiting, self.started, self.stage, self.text, self.finished, self.failed):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a signal nobody connected to
                signal.disconnect()

    def _write_audit(self, answer: str, finish: str) -> None:
        if self.audit is None or self.asked is None:
            return
        try:
            self.audit.record_answer(self.asked, answer, finish)
        except OSError as exc:
            self.audit_error = f"The audit log could not be written: {exc}"


class Preparation(QObject):
    """A conversation processed up to where its next question goes, while that question is typed.

    It ends with exactly one `ended`: "ready" (the question now costs only its own tokens), "stopped" (replaced by
    a newer preparation, discarded, or given way to a question about it) or "failed" (nothing is lost: the question
    does the work itself, and says what went wrong if it still does). Stopped for another window's question, it
    waits and runs again after it."""

    stage = Signal(str, int, int)  # "loading" | "image" | "prompt", done, total
    ended = Signal(str)

    def __init__(self, runner: EngineRunner, owner: str, turns: list[Turn], images: list[bytes | PreparedImage]):
        super().__init__()
        self.owner = owner
        self.turns, self.images = list(turns), list(images)
        self.folder, self.engine_settings = runner.folder, runner.settings
        self.state = "new"  # new -> pending -> running -> ended (a running one given way goes back to pending)
        self.outcome: str | None = None
        self.timings: dict = {}
        self._runner = runner
        self._cancel = threading.Event()
        self._discarded = False

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def discard(self) -> None:
        """Not wanted any more (the attachment changed, the conversation was left): it ends "stopped"."""
        self._runner._discard(self)
