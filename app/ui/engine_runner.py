"""The engine seen from the GUI: requests run on a background thread, results come back as Qt signals.

The engine itself already runs llama.cpp in a child process; this class only keeps its blocking client
calls (loading, waiting for the next streamed piece) off the GUI thread. One request at a time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from inference.engine import Answer, ContextFull, Engine, EngineCrashed, EngineError, EngineSettings, PreparedImage
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.store.gguf_check import ModelFileError

TEXT_BATCH_S = 0.03


class EngineRunner(QObject):
    loaded = Signal(dict)  # the worker's load report (context size, GPU layers, note)
    stage = Signal(str, int, int)  # "loading" | "image" | "prompt" | "generating", done, total
    text = Signal(str)  # a streamed piece of the answer
    finished = Signal(object)  # inference.engine.Answer
    failed = Signal(str, str)  # kind ("no_model" | "model_file" | "crashed" | "context_full" | "error"), message

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.engine: Engine | None = None
        self.folder: Path | None = None
        self.settings = EngineSettings()
        self._thread: threading.Thread | None = None
        # Busy from ask() until the request's last signal has reached the GUI thread (not merely been sent):
        # connected first, these run before any other window's slots, so a new request can never be taken
        # for the end of the previous one.
        self._busy = False
        self.finished.connect(self._request_ended)
        self.failed.connect(self._request_ended)

    @property
    def busy(self) -> bool:
        return self._busy

    def _request_ended(self, *_args) -> None:
        self._busy = False

    def set_model(self, folder: Path | None, settings: EngineSettings | None = None) -> None:
        """Use this model folder for the next request (the worker starts lazily, on the first question)."""
        if folder == self.folder and (settings is None or settings == self.settings) and self.engine is not None:
            return
        self.shutdown()
        self.folder = Path(folder) if folder is not None else None
        self.settings = settings or self.settings
        self.engine = None

    def image_size(self) -> int | None:
        return self.engine.pair.image_size if self.engine is not None else None

    def ask(self, turns: list[Turn], images: list[bytes | PreparedImage], sampling: SamplingSettings | None) -> bool:
        """Answer the last turn on a background thread; False when a request is running already. The request
        ends with exactly one `finished` or `failed`."""
        if self._busy:
            return False
        self._busy = True
        self._thread = threading.Thread(target=self._run, args=(list(turns), list(images), sampling),
                                        name="huatuo-engine-client", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop the running request; the partial answer arrives through `finished` (finish = "cancelled")."""
        if self.engine is not None:
            self.engine.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.engine is not None:
            self.engine.close()

    def _run(self, turns, images, sampling) -> None:
        try:
            engine = self._ensure_engine()
            prepared = [img if isinstance(img, PreparedImage) else engine.prepare_image(img) for img in images]
            # A fast model streams thousands of pieces a second: they go to the GUI in batches, at most one
            # per TEXT_BATCH_S, so its event loop is never flooded (a slow model's pieces still go one by one).
            pending, last_sent = [], 0.0
            for event in engine.generate(turns, prepared, sampling):
                kind = event["type"]
                if kind == "tokens":
                    pending.append(event["text"])
                    if time.monotonic() - last_sent >= TEXT_BATCH_S:
                        self.text.emit("".join(pending))
                        pending, last_sent = [], time.monotonic()
                    continue
                if pending:
                    self.text.emit("".join(pending))
                    pending = []
                if kind == "progress":
                    self.stage.emit(event["stage"], event.get("done", 0), event.get("total", 0))
                elif kind == "done":
                    self.finished.emit(Answer(event["text"], event["finish"], event.get("timings", {}),
                                              event.get("token_ids", [])))
                    return
            raise EngineError("the engine ended the request without an answer")
        except ContextFull as exc:
            self.failed.emit("context_full", str(exc))
        except EngineCrashed as exc:
            self.failed.emit("crashed", str(exc))
        except ModelFileError as exc:
            self.failed.emit("model_file", str(exc))
        except _NoModel as exc:
            self.failed.emit("no_model", str(exc))
        except (EngineError, OSError, ValueError) as exc:
            self.failed.emit("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever happens, the request must end for its listeners
            self.failed.emit("error", f"unexpected error in the engine client: {exc!r}")

    def _ensure_engine(self) -> Engine:
        if self.engine is None:
            if self.folder is None:
                raise _NoModel("no model is installed: open the model manager to get one")
            self.engine = Engine.from_folder(self.folder, self.settings)
        if self.engine.pid is None:
            self.stage.emit("loading", 0, 1)
            self.loaded.emit(self.engine.start())
        return self.engine


class _NoModel(Exception):
    pass
