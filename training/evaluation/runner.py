"""One evaluation run: a folder holding run.json (what was run) and results.jsonl (one line per answered item).

Each result is appended and flushed as soon as it is known, so an interrupted run (Ctrl-C, a crash, a power
cut) keeps everything answered so far; running it again skips the items already in results.jsonl.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import official
from .benchmark import BenchmarkFile, Item
from .protocol import Protocol

RUN_FORMAT = 1
RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"


class RunError(Exception):
    """A run folder that cannot be continued; the message says why."""


def run_name(label: str, protocol: Protocol) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{label}.{protocol.name}")


class RunStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.results_path = self.folder / RESULTS_FILE

    @property
    def meta_path(self) -> Path:
        return self.folder / RUN_FILE

    def meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.folder}: not an evaluation run (no {RUN_FILE})") from None
        except json.JSONDecodeError as exc:
            raise RunError(f"{self.meta_path}: unreadable ({exc})") from None

    def open(self, meta: dict) -> None:
        """Start the run, or continue it if the folder holds the same run (same model, data and protocol)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.meta_path.is_file():
            old = self.meta()
            for key in ("model", "data_sha256", "settings"):
                if old.get(key) != meta.get(key):
                    raise RunError(f"{self.folder} holds a run with a different {key.replace('_', ' ')} "
                                   f"({old.get(key)} vs {meta.get(key)}); choose another --out or remove it")
            return
        partial = self.meta_path.with_name(RUN_FILE + ".part")
        partial.write_text(json.dumps({"format": RUN_FORMAT, **meta}, indent=2, ensure_ascii=False))
        os.replace(partial, self.meta_path)

    def records(self) -> list[dict]:
        """The results written so far; a last line cut short by a crash is dropped (and later overwritten)."""
        if not self.results_path.is_file():
            return []
        records = []
        with open(self.results_path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    records.append(json.loads(line))
        return records

    def append_to(self):
        """The results file opened for appending, after cutting off a partial last line."""
        if self.results_path.is_file():
            data = self.results_path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.results_path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        return open(self.results_path, "a", encoding="utf-8")


@dataclass
class RunOutcome:
    folder: Path
    total: int  # items selected for this invocation
    done_before: int  # of those, answered by an earlier invocation
    answered: int  # answered now
    cancelled: bool = False
    errors: list[str] = field(default_factory=list)


def run(
    backend,
    bench: BenchmarkFile,
    items: Sequence[Item],
    folder: str | Path,
    protocol: Protocol,
    cancel: threading.Event | None = None,
    progress: bool = True,
    on_result: Callable[[dict], None] | None = None,
) -> RunOutcome:
    """Answer the items not yet in the run folder. Ctrl-C (KeyboardInterrupt) or `cancel` stop after the
    current item; what was answered stays written."""
    from tqdm import tqdm

    store = RunStore(folder)
    store.open({
        "label": backend.label, "model": backend.identity, "data": str(bench.path), "data_sha256": bench.sha256,
        "settings": protocol.settings(), "created": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    done = {(r["id"], r["item"]) for r in store.records()}
    todo = [item for item in items if (item.id, item.sha) not in done]
    outcome = RunOutcome(store.folder, len(items), len(items) - len(todo), 0)
    if not todo:
        return outcome
    cancel = cancel or threading.Event()
    bar = tqdm(total=len(items), initial=outcome.done_before, desc=backend.label, unit="item",
               disable=None if progress else True, dynamic_ncols=True)
    right = 0
    try:
        backend.start()
        with store.append_to() as out:
            for item in todo:
                if cancel.is_set():
                    outcome.cancelled = True
                    break
                record = _answer(backend, item, protocol, outcome)
                if record is None:
                    continue
                if record["finish"] == "cancelled":  # stopped mid-answer: not a result
                    outcome.cancelled = True
                    break
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                outcome.answered += 1
                right += record["correct"]
                bar.update(1)
                bar.set_postfix(right=f"{right}/{outcome.answered}")
                if on_result:
                    on_result(record)
    except KeyboardInterrupt:
        outcome.cancelled = True
        backend.cancel()
    finally:
        bar.close()
        backend.close()
    return outcome


def _answer(backend, item: Item, protocol: Protocol, outcome: RunOutcome) -> dict | None:
    from inference.engine import EngineError  # EngineCrashed and ContextFull included

    images = item.images[:official.MAX_IMAGES]  # the released chatbot drops images beyond six
    question = official.user_text(item.question, item.options, len(images))
    try:
        reply = backend.answer(question, images, protocol.sampling(item.id))
    except (EngineError, OSError, ValueError) as exc:  # the item is retried by the next run
        outcome.errors.append(f"item {item.id} ({item.dataset}): {exc}")
        return None
    return {
        "id": item.id, "item": item.sha, "dataset": item.dataset, "subset": item.subset, "answer": item.answer_label,
        "reply": reply.text, **protocol.score(reply.text, item), "finish": reply.finish,
        "generated_tokens": reply.generated_tokens, "seconds": round(reply.seconds, 4),
        "images_dropped": len(item.images) - len(images),
    }
