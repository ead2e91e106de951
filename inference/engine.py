"""The engine client: what the desktop app, the command line and the evaluation harness talk to.

It starts the worker process (spawn), validates model files before the native load, sends whole
conversations, and yields the worker's events. A worker that dies (native abort, out-of-memory kill)
becomes an `EngineCrashed` error for the caller, and the next request starts a new worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from . import families, prompt
from .hardware import physical_cores
from .imageprep import prepare_png
from .kv_states import DEFAULT_LIMIT_BYTES
from .sampling import SamplingSettings
from .store.gguf_check import PairInfo, check_folder


class EngineError(Exception):
    """A request the engine could not serve; the message says why."""


class EngineCrashed(EngineError):
    """The worker process died; the engine restarts it on the next request."""


class ContextFull(EngineError):
    """The conversation no longer fits the context; nothing was dropped."""


@dataclass
class Answer:
    text: str
    finish: str  # stop | length | cancelled | context_full
    timings: dict = field(default_factory=dict)
    token_ids: list[int] = field(default_factory=list)

    def as_history(self, question: str, n_images: int = 0) -> prompt.Turn:
        """This answer as an earlier turn of the conversation (with its ids, so the cache is reused exactly)."""
        return prompt.Turn(question, n_images, self.text, tuple(self.token_ids))


@dataclass
class PreparedImage:
    """An image exactly as the model will see it (its family's preparation: a padded square for LLaVA, the
    smart-resized image for Qwen2.5-VL), PNG-encoded."""

    png: bytes
    sha256: str

    @classmethod
    def from_any(cls, source: bytes | str | Path | Image.Image, size: int) -> PreparedImage:
        """A LLaVA-family image: padded to a square and resized to size x size."""
        if isinstance(source, (str, Path)):
            source = Path(source).read_bytes()
        return cls.from_png(prepare_png(source, size))

    @classmethod
    def for_model(cls, source: bytes | str | Path | Image.Image, model,
                  image_max_tokens: int | None = None) -> PreparedImage:
        """The image as the model (a checked `PairInfo` or a `Manifest`) gets it, by its family."""
        if isinstance(source, (str, Path)):
            source = Path(source).read_bytes()
        family = families.family(getattr(model, "family", families.LLAVA.name))
        return cls.from_png(family.prepare_png(source, model, image_max_tokens))

    @classmethod
    def from_png(cls, png: bytes) -> PreparedImage:
        return cls(png, hashlib.sha256(png).hexdigest())


@dataclass
class EngineSettings:
    n_ctx: int | None = None  # default: the family's (inference/families.py): 4096 for LLaVA, 8192 for Qwen2.5-VL
    n_threads: int | None = None  # default: physical cores
    n_batch: int = 512
    n_gpu_layers: int = 0
    kv_f32: bool = False
    # Qwen2.5-VL: the most image tokens one image takes (28 x 28 pixels each), up to
    # families.Qwen25VLFamily.max_image_tokens; None: the model's training budget (192). LLaVA images are fixed.
    image_max_tokens: int | None = None
    # Keep the text model's weights, repacked for this CPU, in a file beside it, so that later loads map them
    # instead of repacking (repacked_weights.py): ~0.7x the model's size on disk for loads in a fraction of the time.
    keep_repacked_weights: bool = True


class Engine:
    def __init__(self, pair: PairInfo, settings: EngineSettings | None = None, *, state_dir: str | Path | None = None,
                 state_limit_bytes: int = DEFAULT_LIMIT_BYTES):
        """With state_dir (a private folder), prepared and answered conversation prefixes are saved there and
        restored instead of recomputed (kv_states.py); it needs the model's recorded hashes (a checked folder)."""
        self.pair = pair
        self.settings = settings or EngineSettings()
        self.family = families.family(pair.family)
        self.image_tokens = self.family.image_tokens(pair, self.settings.image_max_tokens)  # checks the budget
        self.state_dir = Path(state_dir) if state_dir is not None and pair.sha256 else None
        self.state_limit_bytes = state_limit_bytes
        self._process = None
        self._conn = None
        self._cancel = None
        self._lock = threading.Lock()
        self._stage_changed = threading.Condition()
        self._stage = None
        self._killed_by_cancel = False
        self._request = 0
        self.load_info: dict = {}

    @classmethod
    def from_folder(cls, folder: str | Path, settings: EngineSettings | None = None, **kwargs) -> Engine:
        return cls(check_folder(folder), settings, **kwargs)

    # --- worker lifecycle ----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> dict:
        if self._process is not None and self._process.is_alive():
            return self.load_info
        self._stop_process()
        from .worker import worker_main

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._cancel = context.Event()
        self._process = context.Process(target=worker_main, args=(child, self._cancel), daemon=True,
                                        name="huatuo-engine")
        with _interrupts_ignored_by_children():
            self._process.start()
        child.close()
        self._conn = parent
        s = self.settings
        n_ctx = s.n_ctx or self.family.default_context(self.pair.context_length)
        self._conn.send({"op": "load", "text": str(self.pair.text_path), "mmproj": str(self.pair.mmproj_path),
                         "family": self.family.name, "n_ctx": n_ctx, "n_threads": s.n_threads or physical_cores(),
                         "n_batch": s.n_batch, "n_gpu_layers": s.n_gpu_layers, "kv_f32": s.kv_f32,
                         "keep_repacked_weights": s.keep_repacked_weights,
                         "text_sha256": self.pair.sha256[0] if self.pair.sha256 else None,
                         **self._state_options()})
        reply = self._receive()
        if reply["type"] == "error":
            self._stop_process()
            raise EngineError(f"loading the model failed: {reply['message']}")
        self.load_info = reply
        return reply

    def _state_options(self) -> dict:
        if self.state_dir is None:
            return {}
        # The cache's cell type is part of what a state is: an F32 cache's state is not an F16 cache's.
        key = hashlib.sha256("\n".join([*self.pair.sha256, "f32" if self.settings.kv_f32 else "f16"]).encode())
        return {"state_dir": str(self.state_dir), "model_key": key.hexdigest(),
                "state_limit_bytes": self.state_limit_bytes}

    def close(self) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send({"op": "shutdown"})
                self._process.join(timeout=10)
            except (OSError, BrokenPipeError):
                pass
        self._stop_process()

    def kill(self) -> None:
        """End the worker now, from any thread: loading a model or encoding an image cannot be interrupted
        otherwise. The call waiting on the worker ends with EngineCrashed."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _stop_process(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def _receive(self) -> dict:
        while True:
            if self._conn.poll(0.05):
                try:
                    return self._conn.recv()
                except (EOFError, OSError):
                    pass
            if not self._process.is_alive():
                code = self._process.exitcode
                self._stop_process()
                raise EngineCrashed(_describe_exit(code))

    # --- requests ------------------------------------------------------------------------------
    def prepare_image(self, source) -> PreparedImage:
        return PreparedImage.for_model(source, self.pair, self.settings.image_max_tokens)

    def generate(
        self,
        turns: Sequence[prompt.Turn],
        images: Sequence[PreparedImage],
        sampling: SamplingSettings | None = None,
    ) -> Iterator[dict]:
        """Answer the last turn of a conversation. `images` are the conversation's images in order
        (turn.n_images of them per turn). Yields the worker's events: progress, tokens, done."""
        rid = self._send("generate", turns, images, sampling=asdict(sampling or SamplingSettings()))
        yield from self.events(rid)

    def prepare(self, turns: Sequence[prompt.Turn], images: Sequence[PreparedImage]) -> int:
        """Start processing the conversation up to where its last turn's question goes (the question itself may
        still be empty): earlier turns and the images, while the user types. Returns at once with the request id;
        `events(id)` follows it, or nobody does. Any later request supersedes it: the worker stops preparing,
        keeps what it processed, and a question about the same conversation continues from there."""
        return self._send("prepare", turns, images)

    def _send(self, op: str, turns: Sequence[prompt.Turn], images: Sequence[PreparedImage], **extra) -> int:
        if sum(t.n_images for t in turns) != len(images):
            raise ValueError("the turns name a different number of images than were given")
        if len(images) > prompt.MAX_IMAGES_PER_CONVERSATION:
            raise EngineError(f"at most {prompt.MAX_IMAGES_PER_CONVERSATION} images per conversation "
                              f"(this one has {len(images)})")
        with self._lock:
            self.start()
            self._cancel.clear()
            self._request += 1
            rid = self._request
            shas = iter(img.sha256 for img in images)
            wire_turns = [{"question": t.question, "images": [next(shas) for _ in range(t.n_images)],
                           "answer": t.answer, "answer_tokens": t.answer_tokens} for t in turns]
            self._killed_by_cancel = False
            self._conn.send({"op": op, "id": rid, "turns": wire_turns,
                             "images": {img.sha256: img.png for img in images}, **extra})
            self._set_stage("queued")
        return rid

    def events(self, rid: int) -> Iterator[dict]:
        """The events of request rid (those of earlier requests nobody followed are skipped), up to its done."""
        while True:
            try:
                event = self._receive()
            except EngineCrashed:
                self._set_stage(None)
                if self._killed_by_cancel:  # the user stopped a running image encoder
                    yield {"type": "done", "id": rid, "finish": "cancelled", "text": "", "token_ids": [], "timings": {}}
                    return
                raise
            if event.get("id") not in (None, rid):
                continue
            if event["type"] == "progress":
                self._set_stage(event["stage"])
            if event["type"] == "error":
                self._set_stage(None)
                if event.get("kind") == "context_full":
                    raise ContextFull(f"{event['message']}: start a new conversation or use a larger context; "
                                      f"no image or turn was dropped")
                raise EngineError(event["message"])
            if event["type"] == "done":
                self._set_stage(None)
            yield event
            if event["type"] == "done":
                return

    def _set_stage(self, stage: str | None) -> None:
        with self._stage_changed:
            self._stage = stage
            self._stage_changed.notify_all()

    def ask(self, turns, images, sampling=None, on_text=None) -> Answer:
        """generate() collected into an Answer; on_text(piece) receives the stream."""
        for event in self.generate(turns, images, sampling):
            if event["type"] == "tokens" and on_text:
                on_text(event["text"])
            if event["type"] == "done":
                return Answer(event["text"], event["finish"], event["timings"], event.get("token_ids", []))
        raise EngineError("the engine ended the request without an answer")

    def cancel(self, encoder_grace_s: float | None = 1.0) -> None:
        """Stop the current request at the next safe point, keeping the partial answer. Returns at once.
        The image encoder cannot be interrupted: if it is still running after the grace time, the worker
        is killed (and restarted by the next request); with encoder_grace_s None it is left to finish (a
        preparation: the image it encodes is kept for the question that follows)."""
        if self._cancel is None:
            return
        self._cancel.set()
        process = self._process
        if encoder_grace_s is not None and self._stage in ("image", "queued") and process is not None:
            watchdog = threading.Thread(target=self._kill_if_encoding, args=(process, encoder_grace_s), daemon=True)
            watchdog.start()
            if encoder_grace_s <= 0:
                watchdog.join()

    def _kill_if_encoding(self, process, grace_s: float) -> None:
        with self._stage_changed:
            self._stage_changed.wait_for(lambda: self._stage not in ("image", "queued"), timeout=grace_s)
            if self._stage == "image" and process is self._process and process.is_alive():
                self._killed_by_cancel = True
                process.kill()


@contextlib.contextmanager
def _interrupts_ignored_by_children():
    """Start the worker with Ctrl-C ignored (an ignored signal stays ignored across exec): Ctrl-C in a terminal
    then reaches only the caller, which cancels the request, instead of killing the worker with it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can be changed only on the main thread; a GUI has no terminal Ctrl-C anyway
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        cause = {"SIGKILL": "killed (out of memory, or stopped)", "SIGSEGV": "crashed (segmentation fault)",
                 "SIGABRT": "aborted by llama.cpp (a failed check)"}.get(name, name)
        return f"the inference engine stopped unexpectedly: {cause}. It will restart with the next question."
    return f"the inference engine stopped unexpectedly (exit code {code}). It will restart with the next question."
