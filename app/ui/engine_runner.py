"""The engine seen from the GUI: one `Request` object per question, answered one at a time, in the order asked.

A window makes a request (`EngineRunner.request`), connects its signals and submits it. The request owns its
signals, its cancel and its audit record: cancelling it stops only that question, and its record names the model
and settings of the moment it was asked. A request submitted while another runs waits its turn (its `waiting`
signal says behind which) and then runs. The engine itself runs llama.cpp in a child process; its blocking
client calls (loading, waiting for the next streamed piece) run on one dedicated thread, never the GUI's. Requests and
preparations themselves are in app/ui/engine_requests.py.

A `Preparation` is the conversation up to where the next question goes (earlier turns, attached images), processed
while the user types so that Send costs only the question's own tokens. It runs only when no question waits: a
question submitted meanwhile stops it at the next safe point (keeping what it processed, which a question about the
same conversation continues from), and the newest preparation replaces any earlier one.

Saved conversation states (inference/kv_states.py) are written by the engine after a request has ended; clearing
them (`clear_saved_states`: all of them, or a deleted conversation's) therefore waits its turn like a request and
ends the engine first, so that no state is being written while they are removed (app/ui/states_clearing.py). The
states' disk limit reaches the engine when it next starts.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import deque
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from app.audit import AskedQuestion, AuditLog
from app.ui.background import RateLimit
from app.ui.engine_requests import Preparation, Request, model_of
from app.ui.states_clearing import STATES_FOLDER, StatesClearing, states_dir  # noqa: F401 (STATES_FOLDER: here too)
from inference.engine import Answer, ContextFull, Engine, EngineCrashed, EngineError, EngineSettings, PreparedImage
from inference.kv_states import DEFAULT_LIMIT_BYTES
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.store.gguf_check import ModelFileError

TEXT_BATCH_S = 0.03
ENGINE_END_WAIT_S = 10.0  # at shutdown, how long the engine may take to stop before its worker is killed
KILLED_ENGINE_WAIT_S = 10.0  # and how long its client thread may take to end after that
class EngineRunner(QObject):
    # A request's end, from the engine client thread: the request and an Answer or (kind, message). The runner
    # turns it into the request's own finished or failed on the GUI thread, after the request's last piece of text.
    _request_ended = Signal(object, object)
    _preparation_ended = Signal(object, str)  # the preparation, "ready" | "stopped" | "failed"
    _clearing_ended = Signal(object, int)  # the StatesClearing, how many files it removed
    _let_go = Signal(object)  # id() of work the engine client thread let go of (object: ids pass Qt's int)

    def __init__(self, parent: QObject | None = None, state_limit_bytes: int = DEFAULT_LIMIT_BYTES):
        super().__init__(parent)
        self._request_ended.connect(self._end)
        self._preparation_ended.connect(self._end_preparation)
        self._clearing_ended.connect(self._end_clearing)
        self.state_limit_bytes = state_limit_bytes  # saved states' disk limit from the engine's next start; 0: none
        self._clearing: StatesClearing | None = None  # asked for, waiting for the engine to be free
        self._closed = False  # shut down: nothing starts any more
        self.folder: Path | None = None  # the model for the requests made from now on
        self.settings = EngineSettings()
        self.engine: Engine | None = None  # the engine client thread's; started lazily, on the first request
        self._engine_for: tuple[Path | None, EngineSettings] | None = None
        self._queue: deque[Request] = deque()  # submitted, waiting their turn, oldest first
        self._current: Request | Preparation | None = None  # handed to the engine client thread, not yet ended
        self._preparation: Preparation | None = None  # the newest preparation, waiting for the engine to be free
        self._inbox: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Work handed to the engine client thread, kept here until that thread has let go of it: requests are Qt
        # objects, which must be destroyed on the GUI thread, never by a last reference dropped over there.
        self._handed: list[Request | Preparation | StatesClearing] = []
        self._let_go.connect(self._forget_handed)

    @property
    def busy(self) -> bool:
        """A request is running or waiting (a preparation does not count: any request goes before it)."""
        return isinstance(self._current, Request) or bool(self._queue)

    def set_model(self, folder: Path | None, settings: EngineSettings | None = None) -> None:
        """Answer the requests made from now on with this model folder. A request made before keeps the model it was
        asked of; the engine switches (off the GUI thread) when the first request for the new model runs."""
        self.folder = Path(folder) if folder is not None else None
        self.settings = settings or self.settings
        for preparation in (self._preparation, self._current):  # prepared for another model: of no use now
            if isinstance(preparation, Preparation) and \
                    (preparation.folder, preparation.engine_settings) != (self.folder, self.settings):
                preparation.discard()

    def request(self, turns: list[Turn], images: list[bytes | PreparedImage], sampling: SamplingSettings | None,
                *, owner: str, audit: AuditLog | None = None, study_key: str | None = None,
                image_sha256: list[str] = ()) -> Request:
        """A request for the answer to the last turn, to be submitted once its signals are connected. With `audit`,
        its record (the model, the settings, the question) is fixed now and written when it ends."""
        asked = None
        if audit is not None:
            asked = AskedQuestion(study_key, tuple(image_sha256), model_of(self.folder),
                                  asdict(sampling or SamplingSettings()), turns[-1].question)
        return Request(self, owner, turns, images, sampling, asked, audit)

    def submit(self, request: Request) -> None:
        """Run the request now, or after those submitted before it (it emits `waiting` first). A preparation being
        processed gives way to it; the asker's own preparation is then no longer needed (the request does the rest)."""
        if request.state != "new":
            raise ValueError(f"a request is submitted once (this one is {request.state})")
        running = self._current if isinstance(self._current, Request) else None
        ahead = running or (self._queue[0] if self._queue else None)
        request.state = "queued"
        self._queue.append(request)
        if ahead is not None:
            request.waiting.emit(ahead)
        pending = self._preparation
        if pending is not None and pending.owner == request.owner:
            pending.discard()
        if isinstance(self._current, Preparation):
            preparation = self._current
            preparation._discarded = preparation._discarded or preparation.owner == request.owner
            self._stop_preparation(preparation)
        self._start_next()

    def prepare(self, turns: list[Turn], images: list[bytes | PreparedImage], *, owner: str) -> Preparation:
        """Process the conversation `turns` (its last turn: the question to come, with its images; its text does not
        matter) up to where that question goes, as soon as no question waits. It replaces any earlier preparation."""
        preparation = Preparation(self, owner, turns, images)
        for earlier in (self._preparation, self._current):
            if isinstance(earlier, Preparation):
                earlier.discard()
        preparation.state = "pending"
        self._preparation = preparation
        self._start_next()
        return preparation

    def clear_saved_states(self, images: list[bytes] | None = None) -> StatesClearing:
        """Remove every saved state, or those holding one of `images` (a deleted conversation's), as soon as the
        engine is free: before the next question or preparation, after the one running now. The engine is ended
        first (it may still be writing the state of its last answer); it starts again with the next question.
        Asked again before it ran, the same clearing removes what both asked for."""
        if self._clearing is None:
            self._clearing = StatesClearing(states_dir(), images)
        else:
            self._clearing.include(images)
        clearing = self._clearing
        self._start_next()
        return clearing

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every request and end the engine client thread (and with it the engine); nothing starts after it.
        The waiting requests end here and now, the running one as it stops; their ends reach their owners before
        this returns, while they can still store them. An engine still busy after `timeout` seconds (loading a
        model or encoding an image, which cannot be interrupted) has its worker killed: when this returns, no
        thread of the runner is left to signal a window being deleted."""
        self._closed = True
        if self._preparation is not None:
            self._preparation.discard()
        if isinstance(self._current, Preparation):
            self._current.discard()
        waiting = list(self._queue)
        self._queue.clear()
        for request in waiting:
            request._cancel.set()
            self._finish(request, Answer("", "cancelled", {}, []))
        if isinstance(self._current, Request):
            self._current.cancel()
        if self._clearing is not None:  # asked for: done before the engine client ends
            self._hand_to_engine_thread(self._clearing)
            self._clearing = None
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(ENGINE_END_WAIT_S if timeout is None else timeout)
            deadline = time.monotonic() + KILLED_ENGINE_WAIT_S
            while self._thread.is_alive() and time.monotonic() < deadline:
                if (engine := self.engine) is not None:  # retried: a worker still being spawned is not alive yet
                    engine.kill()
                self._thread.join(0.1)
            self._thread = None
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)  # the ends the engine thread sent, now

    # --- on the GUI thread ------------------------------------------------------------------------
    def _cancel(self, request: Request) -> None:
        request._cancel.set()  # the client thread also checks it, for a cancel that came before the engine's turn
        if request in self._queue:
            self._queue.remove(request)
            # Ended from the event loop, like a running request: never inside the caller's cancel().
            QTimer.singleShot(0, self, lambda: self._finish(request, Answer("", "cancelled", {}, [])))
        elif request is self._current and self.engine is not None:
            self.engine.cancel()

    def _end(self, request: Request, end: Answer | tuple[str, str]) -> None:
        """A request's one end: its owner hears of it, then the next request in line starts (a request submitted
        by the owner meanwhile takes its place in the line behind those already waiting)."""
        request.state = "ended"
        if request is self._current:
            self._current = None
        if isinstance(end, Answer):
            request.finished.emit(end)
        else:
            request.failed.emit(*end)
        request._disconnect_all()
        self._start_next()

    def _discard(self, preparation: Preparation) -> None:
        preparation._discarded = True
        if preparation is self._preparation:
            self._preparation = None
            preparation.state = "ended"
            # Ended from the event loop: never inside the caller's own call.
            QTimer.singleShot(0, self, lambda: self._announce(preparation, "stopped"))
        elif preparation is self._current:
            self._stop_preparation(preparation)

    def _stop_preparation(self, preparation: Preparation) -> None:
        """Stop the running preparation at the next safe point; an image being encoded is finished and kept."""
        preparation._cancel.set()
        if self.engine is not None:
            self.engine.cancel(encoder_grace_s=None)

    def _end_preparation(self, preparation: Preparation, outcome: str) -> None:
        if preparation is self._current:
            self._current = None
        if outcome == "stopped" and not preparation._discarded and self._preparation is None:
            # It gave way to another window's question: it runs again after that, from where it got.
            preparation._cancel.clear()
            preparation.state = "pending"
            self._preparation = preparation
        else:
            preparation.state = "ended"
            self._announce(preparation, outcome)
        self._start_next()

    @staticmethod
    def _announce(preparation: Preparation, outcome: str) -> None:
        if preparation.outcome is not None:
            return
        preparation.outcome = outcome
        preparation.ended.emit(outcome)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a signal nobody connected to
            preparation.stage.disconnect()
            preparation.ended.disconnect()

    def _end_clearing(self, clearing: StatesClearing, removed: int) -> None:
        if clearing is self._current:
            self._current = None
        clearing.ended.emit(removed)
        self._start_next()

    def _start_next(self) -> None:
        if self._current is not None or self._closed:
            return
        if self._clearing is not None:
            self._current, self._clearing = self._clearing, None
            self._hand_to_engine_thread(self._current)
            return
        if not self._queue:
            if self._preparation is not None:
                preparation, self._preparation = self._preparation, None
                self._current, preparation.state = preparation, "running"
                self._hand_to_engine_thread(preparation)
            return
        request = self._current = self._queue.popleft()
        request.state, request.ran = "running", True
        request.started.emit()
        self._hand_to_engine_thread(request)

    def _hand_to_engine_thread(self, work: Request | Preparation | StatesClearing) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._inbox = queue.SimpleQueue()  # a thread of its own: one left behind by shutdown keeps its own
            self._thread = threading.Thread(target=self._serve, args=(self._inbox,), name="huatuo-engine-client",
                                            daemon=True)
            self._thread.start()
        self._handed.append(work)
        self._inbox.put(work)

    def _forget_handed(self, work_id: int) -> None:
        for i, work in enumerate(self._handed):  # one hand-off each: a preparation that gave way is handed again
            if id(work) == work_id:
                del self._handed[i]
                return

    # --- on the engine client thread ---------------------------------------------------------------
    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while (work := inbox.get()) is not None:
            work_id = id(work)
            try:
                if isinstance(work, Preparation):
                    self._prepare(work)
                elif isinstance(work, StatesClearing):
                    self._clear(work)
                else:
                    self._answer(work)
            finally:
                del work  # before waiting for the next: the GUI thread drops the last reference, once told
                self._let_go.emit(work_id)
        if self.engine is not None:
            self.engine.close()
            self.engine = self._engine_for = None

    def _answer(self, request: Request) -> None:
        streamed: list[str] = []  # every piece, for the audit record of an answer that fails half-way
        pending: list[str] = []  # pieces not sent to the GUI yet
        # A fast model streams thousands of pieces a second: they go to the GUI in batches, at most one per
        # TEXT_BATCH_S, so its event loop is never flooded (a slow model's still go one by one).
        batches = RateLimit(TEXT_BATCH_S)

        def send_pending() -> None:
            if pending:
                request.text.emit("".join(pending))
                pending.clear()

        try:
            engine = self._engine_for_request(request)
            prepared = [img if isinstance(img, PreparedImage) else engine.prepare_image(img) for img in request.images]
            if request.cancelled:  # stopped while the model loaded: the engine never sees it
                self._finish(request, Answer("", "cancelled", {}, []))
                return
            cancel_sent = False
            for event in engine.generate(request.turns, prepared, request.sampling):
                if request.cancelled and not cancel_sent:  # cancelled before the engine had taken the request
                    engine.cancel()
                    cancel_sent = True
                kind = event["type"]
                if kind == "tokens":
                    streamed.append(event["text"])
                    pending.append(event["text"])
                    if batches.ready():
                        send_pending()
                    continue
                send_pending()
                if kind == "progress":
                    request.stage.emit(event["stage"], event.get("done", 0), event.get("total", 0))
                elif kind == "done":
                    self._finish(request, Answer(event["text"], event["finish"], event.get("timings", {}),
                                                 event.get("token_ids", [])))
                    return
            raise EngineError("the engine ended the request without an answer")
        except Exception as exc:  # noqa: BLE001 - whatever happens, the request must end for its owner
            send_pending()
            kind, message = _failure(exc)
            if kind != "no_model":  # without a model no question reached one: nothing to record
                request._write_audit("".join(streamed), "context_full" if kind == "context_full" else "error")
            self._request_ended.emit(request, (kind, message))

    def _prepare(self, preparation: Preparation) -> None:
        outcome = "failed"
        try:
            engine = self._engine_for_request(preparation)
            images = [img if isinstance(img, PreparedImage) else engine.prepare_image(img)
                      for img in preparation.images]
            if preparation.cancelled:
                outcome = "stopped"
                return
            stop_sent = False
            for event in engine.events(engine.prepare(preparation.turns, images)):
                if preparation.cancelled and not stop_sent:  # stopped before the engine had taken it
                    engine.cancel(encoder_grace_s=None)
                    stop_sent = True
                if event["type"] == "progress":
                    preparation.stage.emit(event["stage"], event.get("done", 0), event.get("total", 0))
                elif event["type"] == "done":
                    preparation.timings = event.get("timings", {})
                    outcome = "ready" if event["finish"] == "prepared" else "stopped"
                    return
        except Exception:  # noqa: BLE001 - a preparation only saves time: the question does the work and reports
            outcome = "failed"
        finally:
            self._preparation_ended.emit(preparation, outcome)

    def _clear(self, clearing: StatesClearing) -> None:
        removed = 0
        try:
            if self.engine is not None:  # the worker ends after the state it may be writing: none is written now
                self.engine.close()
                self.engine = self._engine_for = None
            removed = clearing.run()
        except Exception:  # noqa: BLE001 - the engine client thread serves on; what could not be read stays
            pass
        finally:
            self._clearing_ended.emit(clearing, removed)

    def _finish(self, request: Request, answer: Answer) -> None:
        request._write_audit(answer.text, answer.finish)
        self._request_ended.emit(request, answer)

    def _engine_for_request(self, request: Request | Preparation) -> Engine:
        """The engine for the request's model, started; the previous one is closed if the model changed."""
        wanted = (request.folder, request.engine_settings)
        if self.engine is not None and self._engine_for != wanted:
            self.engine.close()
            self.engine = self._engine_for = None
        if request.folder is None:
            raise _NoModel("no model is installed: open the model manager to get one")
        if self.engine is None:
            self.engine = Engine.from_folder(request.folder, request.engine_settings, state_dir=states_dir())
            self._engine_for = wanted
        if self.engine.pid is None:
            self._apply_state_limit(self.engine)
            request.stage.emit("loading", 0, 1)
            self.engine.start()
        return self.engine


    def _apply_state_limit(self, engine: Engine) -> None:
        """The disk limit of saved states as set now, for the engine about to start (0: it saves none)."""
        limit = self.state_limit_bytes
        engine.state_limit_bytes = limit
        engine.state_dir = states_dir() if limit > 0 and engine.pair.sha256 else None


class _NoModel(Exception):
    pass


def _failure(exc: Exception) -> tuple[str, str]:
    """A failed request's kind and message, for its owner."""
    for kinds, kind in ((ContextFull, "context_full"), (EngineCrashed, "crashed"), (ModelFileError, "model_file"),
                        (_NoModel, "no_model"), ((EngineError, OSError, ValueError), "error")):
        if isinstance(exc, kinds):
            return kind, str(exc)
    return "error", f"unexpected error in the engine client: {exc!r}"
