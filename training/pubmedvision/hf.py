"""Reading stage files into Hugging Face `datasets` (Arrow, memory-mapped, `map` over several processes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BASE_COLUMNS = {"id": "string", "images": ["string"], "image_files": ["string"], "caption": "string",
                "mentions": ["string"]}
TEXT_COLUMNS = {**BASE_COLUMNS, "medical_terms": "int32"}
IMAGE_COLUMNS = {**TEXT_COLUMNS, "image_hashes": ["string"]}


def features(columns: dict):
    from datasets import Features, Sequence, Value

    return Features({name: Sequence(Value(t[0])) if isinstance(t, list) else Value(t)
                     for name, t in columns.items()})


@contextmanager
def scratch(work_dir: Path) -> Iterator[Path]:
    """A cache folder for one stage's Arrow files, removed afterwards: only the JSONL outputs are kept."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".arrow-", dir=work_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def show_progress(enabled: bool) -> None:
    import datasets

    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()


def load_jsonl(paths: list[Path], columns: dict, cache_dir: Path):
    """The records of JSONL files as one Dataset, in file order; empty files give an empty Dataset."""
    import datasets

    feats = features(columns)
    nonempty = [str(p) for p in paths if p.stat().st_size > 0]
    if not nonempty:
        return datasets.Dataset.from_dict({name: [] for name in columns}, features=feats)
    return datasets.Dataset.from_json(nonempty, features=feats, cache_dir=str(cache_dir))


def processes(num_proc: int, rows: int) -> int | None:
    """`map`'s num_proc: None (this process) when one is enough."""
    n = min(num_proc, max(rows // 8, 1))  # a worker process costs more than a few rows
    return n if n > 1 else None
