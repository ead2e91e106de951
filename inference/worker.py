"""The engine's worker process: it alone loads llama.cpp, so a native abort, an out-of-memory kill or a
crash in the image encoder ends only this process, never the app.

It keeps one conversation's KV cache. Each request carries the whole conversation; the worker compares
it, unit by unit (a token or an image), with what the cache holds, rolls the cache back to the first
difference and processes only the rest. A follow-up question therefore costs only its own tokens, and a
regenerate or an edit rolls back to the right point. Encoded images are kept by hash, so rolling back
past an image re-inserts its embeddings without running the vision tower again.

A preparation ("prepare") is a request without a question: it processes the conversation up to where the next
question goes (earlier turns, newly attached images) while the user types, so the question itself then costs
only its own tokens. It samples nothing and gives way to any request that arrives, keeping what it processed.

With a state folder (kv_states.py), the cache after a preparation and after each answer is saved; a request whose
conversation begins with a saved prefix longer than what the cache shares with it restores that prefix instead of
processing it (another conversation reopened, or the app restarted).

The model's family (inference/families.py) gives the prompt format. Positions and KV cells are counted apart:
with Qwen2.5-VL's M-RoPE an image advances the position by one side of its grid but occupies a cell per token, so
the context is checked in cells, and the cache is rolled back only at unit boundaries (never inside an image).
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from . import families, prompt, repacked_weights
from .cancellation import Cancelled
from .kv_states import DEFAULT_LIMIT_BYTES, StateStore
from .native import ContextFullError, EncodedImage, NativeModel, quiet_native_logs
from .sampler_chain import SamplerChain
from .sampling import SamplingSettings

IMAGE_SPLIT = "\ue000"  # private-use characters mark image and answer positions while the prompt is built
ANSWER_MARK = "\ue001"
KEPT_IMAGES = 2 * prompt.MAX_IMAGES_PER_CONVERSATION  # encoded images kept (8 MB each for the 7B)
_LLAVA_PROMPT = families.LLAVA.renderer(None)
_PIECE = re.compile(f"({IMAGE_SPLIT}|{ANSWER_MARK}\\d+{ANSWER_MARK})")


@dataclass(frozen=True)
class ImageUnit:
    sha256: str


def conversation_pieces(turns: list[dict], keep_answer_tokens: bool = False,
                        render: families.Render = _LLAVA_PROMPT) -> list[str | ImageUnit | list[int]]:
    """Text pieces, images and (with keep_answer_tokens) answers as their generated token ids, in prompt
    order, in the prompt format `render` writes (the model family's). Text is split only at images (and kept
    answers), as the official code tokenizes it."""
    clean = []
    for i, t in enumerate(turns):
        answer = t.get("answer")
        if keep_answer_tokens and answer is not None and t.get("answer_tokens") is not None:
            answer = f"{ANSWER_MARK}{i}{ANSWER_MARK}"
        question = t["question"].replace(IMAGE_SPLIT, "").replace(ANSWER_MARK, "")
        clean.append(prompt.Turn(question, len(t["images"]), answer))
    shas = iter([sha for t in turns for sha in t["images"]])
    pieces: list[str | ImageUnit | list[int]] = []
    for part in _PIECE.split(render(clean, IMAGE_SPLIT)):
        if part == IMAGE_SPLIT:
            pieces.append(ImageUnit(next(shas)))
        elif part.startswith(ANSWER_MARK):
            pieces.append(list(turns[int(part.strip(ANSWER_MARK))]["answer_tokens"]))
        elif part:
            pieces.append(part)
    return pieces


class Superseded(Cancelled):
    """A preparation stopped because another request arrived (it keeps what it had processed)."""


class Session:
    def __init__(self, model: NativeModel, send, cancel, incoming=lambda: False, states: StateStore | None = None,
                 family=families.LLAVA):
        self.model = model
        self.family = family
        self.render = family.renderer(model.chat_template)
        self.send = send
        self.cancel = cancel
        self.incoming = incoming  # True when another request waits: a preparation then gives way
        self.states = states
        self.units: list[int | ImageUnit] = []  # what the KV cache holds, in order
        self.ends: list[int] = []  # position after each unit
        self.cells: list[int] = []  # KV cells in use after each unit (more than positions after an M-RoPE image)
        self.images: OrderedDict[str, EncodedImage] = OrderedDict()  # least recently used first

    @property
    def n_past(self) -> int:
        return self.ends[-1] if self.ends else 0

    @property
    def n_cells(self) -> int:
        return self.cells[-1] if self.cells else 0

    def _n_pos(self, unit) -> int:
        return 1 if isinstance(unit, int) else self.images[unit.sha256].n_pos

    def _n_cells(self, unit) -> int:
        return 1 if isinstance(unit, int) else self.images[unit.sha256].n_tokens

    def _keep(self, n: int) -> None:
        """Keep the first n units: the KV cache is cut at the position after them (a unit boundary)."""
        self.model.truncate(self.ends[n - 1] if n else 0)
        del self.units[n:], self.ends[n:], self.cells[n:]

    def _append(self, unit) -> None:
        self.units.append(unit)
        self.ends.append(self.n_past + self._n_pos(unit))
        self.cells.append(self.n_cells + self._n_cells(unit))

    def _usable_answer_tokens(self, turns: list[dict]) -> list[dict]:
        """Generated ids are used for an answer only if they still spell its text (it was not edited).
        Only byte-level BPE vocabularies allow it: splitting a text there does not change its tokens, while
        SentencePiece would add a word-start marker to the piece that follows."""
        checked = []
        for turn in turns:
            ids = turn.get("answer_tokens")
            if ids is not None:
                valid = self.model.is_bpe and all(0 <= i < self.model.n_vocab for i in ids)
                if not valid or self.model.detokenize(list(ids)).decode("utf-8", "replace") != turn.get("answer"):
                    turn = {**turn, "answer_tokens": None}
            checked.append(turn)
        return checked

    def _check_cancel(self, yield_to_requests: bool = False) -> None:
        if self.cancel.is_set():
            raise Cancelled
        if yield_to_requests and self.incoming():
            raise Superseded

    def _units(self, request: dict, prefix_only: bool = False) -> list[int | ImageUnit]:
        """The request's conversation as units (tokens and images). With prefix_only, only what comes before the
        last turn's question: the text after the last image (or answer) is tokenized with the question, so it
        is left to the request that carries the question."""
        pieces = conversation_pieces(self._usable_answer_tokens(request["turns"]), self.model.is_bpe, self.render)
        if prefix_only:
            pieces = pieces[:-1]  # the last piece is always text: the last question and the open assistant turn
        units: list[int | ImageUnit] = []
        for piece in pieces:
            if isinstance(piece, ImageUnit):
                units.append(piece)
            elif isinstance(piece, list):
                units.extend(piece)
            else:
                units.extend(self.model.tokenize(piece, special=self.family.parse_special))
        return units

    def _process(self, rid, units: list[int | ImageUnit], images: dict[str, bytes], *, fresh_logits: bool,
                 yield_to_requests: bool = False) -> dict:
        """Make the KV cache hold exactly `units`: roll back to the first difference with what it holds, encode
        the images not seen yet, process the rest. With fresh_logits the last unit is processed again even if
        cached (its logits start the answer). Returns what it cost, for the timings."""
        shas = [u.sha256 for u in units if isinstance(u, ImageUnit)]
        missing = [s for s in shas if s not in self.images and s not in images]
        if missing:
            raise ValueError(f"image {missing[0][:12]} was not sent with the request")

        # Longest common prefix with the cache.
        common = 0
        for cached, wanted in zip(self.units, units, strict=False):
            if cached != wanted:
                break
            common += 1
        if fresh_logits:
            common = min(common, len(units) - 1)
        elif common == len(units):  # already there: what follows it in the cache may be the next question's
            return {"reused_tokens": self.ends[common - 1] if common else 0, "restored_tokens": 0, "prompt_tokens": 0,
                    "images_encoded": 0, "images_decoded": 0}
        common, restored = self._restore(units, common, len(units) - 1 if fresh_logits else len(units))
        self._keep(common)
        reused, reused_cells = self.n_past, self.n_cells
        pending = units[common:]

        # Keep a few recent images beyond the conversation's (a re-attached image is not encoded again),
        # dropping the least recently used ones; the cache before `common` uses none of those.
        for sha in shas:
            if sha in self.images:
                self.images.move_to_end(sha)
        for sha in [s for s in self.images if s not in shas][: max(0, len(self.images) - KEPT_IMAGES)]:
            self.model.free_image(self.images.pop(sha))

        # Encode new images first (the vision tower is the slow, uninterruptible part), then check the context.
        new_images = [s for s in dict.fromkeys(u.sha256 for u in pending if isinstance(u, ImageUnit))
                      if s not in self.images]
        for i, sha in enumerate(new_images):
            self._check_cancel(yield_to_requests)
            self.send({"type": "progress", "id": rid, "stage": "image", "done": i, "total": len(new_images)})
            self.images[sha] = self.model.encode_image(images[sha])
        # Counted in cells before anything is decoded: an M-RoPE image takes fewer positions than cells.
        needed = reused_cells + sum(self._n_cells(u) for u in pending)
        if needed + (1 if fresh_logits else 0) > self.model.n_ctx:
            raise ContextFullError(needed + 1, self.model.n_ctx)

        total_new = sum(self._n_pos(u) for u in pending)
        n_past = reused
        i = 0
        while i < len(pending):
            self._check_cancel(yield_to_requests)
            unit = pending[i]
            if isinstance(unit, ImageUnit):
                batch = [unit]
                n_past = self.model.decode_image(self.images[unit.sha256], n_past)
            else:
                batch = []
                while i + len(batch) < len(pending) and isinstance(pending[i + len(batch)], int) \
                        and len(batch) < self.model.n_batch:
                    batch.append(pending[i + len(batch)])
                n_past = self.model.decode_tokens(batch, n_past)
            for u in batch:
                self._append(u)
            i += len(batch)
            self.send({"type": "progress", "id": rid, "stage": "prompt", "done": n_past - reused, "total": total_new})
        return {"reused_tokens": reused, "restored_tokens": restored, "prompt_tokens": total_new,
                "images_encoded": len(new_images), "images_decoded": sum(isinstance(u, ImageUnit) for u in pending)}

    # --- saved states ----------------------------------------------------------------------------
    def _restore(self, units: list, common: int, at_most: int) -> tuple[int, int]:
        """Restore the longest saved prefix of units that is longer than what the cache shares with them. Returns
        the units now shared and the positions restored (0: nothing was)."""
        if self.states is None:
            return common, 0
        plain = _plain(units)
        found = self.states.find(plain, common, at_most)
        if found is None:
            return common, 0
        n, path = found
        saved = self.states.load(path, plain[:n])
        if saved is None or saved.cells[-1] >= self.model.n_ctx:
            return common, 0
        if not self.model.restore_sequence_state(saved.blob):  # the cache is empty now
            self._keep(0)
            self.states.discard(path, "llama.cpp could not load it")
            return 0, 0
        self.units, self.ends, self.cells = list(units[:n]), list(saved.ends), list(saved.cells)
        return n, self.n_past

    def _save_state(self) -> None:
        """Save what the cache holds, if it holds an image (a text prefix is quicker to process than to load)."""
        if self.states is None or not any(isinstance(u, ImageUnit) for u in self.units):
            return
        plain = _plain(self.units)
        if self.states.has(plain):
            return
        try:
            self.states.save(plain, self.ends, self.model.sequence_state(), self.cells)
        except (RuntimeError, MemoryError) as exc:
            print(f"huatuo engine: a prepared state was not saved: {exc}", file=sys.stderr, flush=True)

    def prepare(self, request: dict) -> None:
        """Process the conversation up to where its last question goes (earlier turns, the new images), so that
        the request that brings the question processes only its own tokens. Nothing is sampled. It gives way to
        any request that arrives meanwhile, keeping what it has processed."""
        rid = request["id"]
        started = time.perf_counter()
        # Nothing before the question (a first question without images) or all of it cached: the cache stays.
        cost = self._process(rid, self._units(request, prefix_only=True), request["images"], fresh_logits=False,
                             yield_to_requests=True)
        self.send({"type": "done", "id": rid, "finish": "prepared", "text": "", "token_ids": [],
                   "timings": {**cost, "prepare_s": time.perf_counter() - started, "n_past": self.n_past,
                               "n_cells": self.n_cells}})
        if cost["prompt_tokens"]:
            self._save_state()

    def generate(self, request: dict) -> None:
        rid = request["id"]
        settings = SamplingSettings(**request.get("sampling", {}))
        started = time.perf_counter()
        cost = self._process(rid, self._units(request), request["images"], fresh_logits=True)
        # The official code generates from embeddings only, so its repetition penalty sees the answer's own
        # tokens, never the prompt's: the sampler starts with an empty history.
        sampler = SamplerChain(settings, self.model.n_vocab, self.model.n_ctx)
        try:
            finish = self._stream(rid, settings, sampler, started, cost)
        finally:
            sampler.close()
        if finish in ("stop", "length"):  # after the answer was sent: saving never delays it
            self._save_state()

    def _stream(self, rid, settings, sampler, started, cost: dict) -> str:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text_parts: list[str] = []
        token_ids: list[int] = []
        first_token_at = None
        finish = "length"
        generated = 0
        perf_ms, perf_tokens = self.model.decode_perf()
        decode_started = last_token_at = time.perf_counter()
        while generated < settings.max_new_tokens:
            if self.cancel.is_set():
                finish = "cancelled"
                break
            token = sampler.sample(self.model.llm.ctx)
            if self.model.is_end_of_generation(token):
                finish = "stop"
                break
            last_token_at = time.perf_counter()
            if first_token_at is None:
                first_token_at = decode_started = last_token_at
            piece = decoder.decode(self.model.detokenize([token]))
            generated += 1
            token_ids.append(token)
            if piece:
                text_parts.append(piece)
                self.send({"type": "tokens", "id": rid, "text": piece})
            if self.n_cells + 1 >= self.model.n_ctx:
                finish = "context_full"
                break
            self.model.decode_tokens([token], self.n_past)
            self._append(token)
        tail = decoder.decode(b"", final=True)
        if tail:
            text_parts.append(tail)
            self.send({"type": "tokens", "id": rid, "text": tail})
        now = time.perf_counter()
        # first to last sampled token: the window every llama.cpp tool reports generation speed over
        decode_s = last_token_at - decode_started if first_token_at else 0.0
        llama_ms, llama_tokens = self.model.decode_perf()
        self.send({
            "type": "done", "id": rid, "finish": finish, "text": "".join(text_parts), "token_ids": token_ids,
            "timings": {
                "ttft_s": (first_token_at or now) - started,
                **cost,
                "generated_tokens": generated,
                "decode_s": decode_s,
                "tokens_per_s": (generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
                # llama.cpp's own timing of the answer's token decodes (compute only)
                "llama_decode_ms": llama_ms - perf_ms,
                "llama_decoded_tokens": llama_tokens - perf_tokens,
                "n_past": self.n_past,
                "n_cells": self.n_cells,
            },
        })
        return finish

    def close(self) -> None:
        for image in self.images.values():
            self.model.free_image(image)
        self.images.clear()


def _plain(units: list) -> list[int | str]:
    return [u if isinstance(u, int) else u.sha256 for u in units]


def worker_main(conn, cancel) -> None:
    """Entry point of the worker process (multiprocessing, spawn)."""
    if not os.environ.get("HUATUO_NATIVE_LOG"):
        quiet_native_logs()
    model: NativeModel | None = None
    session: Session | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        op = message.get("op")
        try:
            if op == "load":
                import llama_cpp

                gpu_layers = message.get("n_gpu_layers", 0)
                gpu_note = None
                if gpu_layers and not llama_cpp.llama_supports_gpu_offload():
                    gpu_layers, gpu_note = 0, "this llama.cpp build has no GPU backend; running on the CPU"
                repacked = None
                if message.get("keep_repacked_weights"):
                    # the layers offloaded to a GPU are not repacked: their number changes what the file holds
                    repacked = repacked_weights.weights_path(message["text"], message.get("text_sha256"),
                                                             f"{repacked_weights.build_key()}\ngpu layers {gpu_layers}")
                else:  # not wanted (any more): its disk is given back
                    text = Path(message["text"])
                    repacked_weights.remove_kept(text.parent, stem=text.stem)
                model = NativeModel(
                    message["text"], message["mmproj"], n_ctx=message["n_ctx"], n_threads=message.get("n_threads"),
                    n_batch=message.get("n_batch", 512), n_gpu_layers=gpu_layers,
                    kv_f32=message.get("kv_f32", False), repacked_weights=repacked,
                )
                states = None
                if message.get("state_dir") and message.get("model_key"):
                    states = StateStore(message["state_dir"], message["model_key"], llama_cpp.__version__,
                                        message.get("state_limit_bytes") or DEFAULT_LIMIT_BYTES)
                session = Session(model, conn.send, cancel, conn.poll, states,
                                  families.family(message.get("family", families.LLAVA.name)))
                conn.send({"type": "loaded", "n_ctx": model.n_ctx, "gpu_layers": gpu_layers, "gpu_note": gpu_note,
                           "load_timings": model.load_timings, "repacked_weights": model.repacked_weights,
                           "system_info": llama_cpp.llama_print_system_info().decode(errors="replace")})
            elif op in ("generate", "prepare"):
                if session is None:
                    raise RuntimeError("no model is loaded")
                try:
                    (session.generate if op == "generate" else session.prepare)(message)
                except Cancelled:  # what was processed before the stop stays in the cache
                    conn.send({"type": "done", "id": message["id"], "finish": "cancelled", "text": "", "token_ids": [],
                               "timings": {"n_past": session.n_past}})
            elif op == "shutdown":
                break
        except ContextFullError as exc:
            conn.send({"type": "error", "id": message.get("id"), "kind": "context_full", "message": str(exc)})
        except Exception as exc:  # reported to the client; the worker stays usable
            if session is not None:  # the cache may hold half a request: start clean next time
                session._keep(0)
            conn.send({"type": "error", "id": message.get("id"), "kind": type(exc).__name__, "message": str(exc)})
    if session is not None:
        session.close()
    if model is not None:
        model.close()
