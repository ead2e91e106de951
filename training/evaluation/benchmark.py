"""The benchmark file of FreedomIntelligence/Medical_Multimodal_Evaluation_Data, read from a local path.

One JSON array (``medical_multimodel_evaluation_data.json``, 17,303 items) in the item format that
`inference.evalset` reads; each item has ``question``, ``options`` (a list of option texts, or its Python
literal as a string), ``answer`` (the text of the right option, or "?"), ``image`` (a list of paths relative
to the JSON file, e.g. "images/x.jpg"), ``dataset`` (the source: "VQA-RAD_test", "SLAKE_test",
"PathVQA_test", "PMC-VQA_test", "OmniMedVQA", "MMMU_Medical_Validation") and ``subset`` (e.g. the
OmniMedVQA modality). The released evaluation numbers items 1, 2, … in file order (``test_id``); here that
number is the item's id, and it keys the results. Like the released scorer, open questions
(``question_type == "open"``) and items without options are left out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from inference import evalset

from . import official

# Short names accepted by --bench, and the published accuracy (%) of HuatuoGPT-Vision (7B, 34B) per benchmark.
KNOWN = {
    "vqa-rad": ("VQA-RAD", 63.7, 68.1),
    "slake": ("SLAKE", 76.2, 76.9),
    "pathvqa": ("PathVQA", 57.9, 63.5),
    "pmc-vqa": ("PMC-VQA", 54.3, 58.2),
    "omnimedvqa": ("OmniMedVQA", 74.0, 76.7),
    "mmmu": ("MMMU Health & Medicine", 50.6, 54.4),
}


class BenchmarkError(Exception):
    """The benchmark file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Item:
    id: int  # 1-based position in the file: the released evaluation's test_id
    dataset: str
    subset: str
    question: str
    options: tuple[str, ...]
    answer: str
    answer_label: str | None  # the answer's letter; None for "?"
    images: tuple[Path, ...]
    sha: str  # content fingerprint: pairs the same item across runs


@dataclass
class BenchmarkFile:
    path: Path
    sha256: str
    items: list[Item]
    skipped: int  # open questions and items without options

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(item.dataset for item in self.items))


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def short_name(dataset: str) -> str | None:
    """The --bench short name of a dataset field value ("VQA-RAD_test" -> "vqa-rad"), if it is a known one."""
    for short in KNOWN:
        if _key(dataset).startswith(_key(short)):
            return short
    return None


def load(path: str | Path, images_dir: str | Path | None = None) -> BenchmarkFile:
    path = Path(path)
    base = Path(images_dir) if images_dir is not None else path.parent
    try:
        raw, rows = evalset.read_json(path, str(path))
        if not isinstance(rows, list):
            raise BenchmarkError(f"{path}: expected a JSON array of items, found {type(rows).__name__}")
        items = [_item(path, base, number, row) for number, row in enumerate(rows, start=1)]
    except evalset.EvalSetError as exc:
        raise BenchmarkError(str(exc)) from None
    kept = [item for item in items if item is not None]
    return BenchmarkFile(path, hashlib.sha256(raw).hexdigest(), kept, len(items) - len(kept))


def _item(path: Path, base: Path, number: int, row) -> Item | None:
    """An evaluation-set item as the released evaluation takes it: every field it reads must be there; open
    questions and items without options are left out; the answer's letter must be one the prompt shows."""
    where = f"{path}: item {number}"
    if not isinstance(row, dict):
        raise BenchmarkError(f"{where} is not an object")
    missing = [k for k in ("question", "options", "answer", "dataset") if k not in row]
    if missing:
        raise BenchmarkError(f"{where} has no {', '.join(missing)}")
    if row.get("question_type") == "open":  # left out unread, as by the released scorer
        return None
    item = evalset.parse_item(row, f"{where} ({row['dataset']})")
    if not item.options:
        return None
    if item.correct is not None and item.correct >= len(official.OPTION_LETTERS):
        raise BenchmarkError(f"{where}: the answer is option {item.correct + 1}; the prompt shows at most 11")
    answer = str(row["answer"])
    fingerprint = json.dumps([row["dataset"], row.get("subset", ""), item.question, item.options, answer,
                              item.images], ensure_ascii=False)
    return Item(
        id=number, dataset=str(row["dataset"]), subset=item.subset or "", question=item.question,
        options=item.options, answer=answer,
        answer_label=official.OPTION_LETTERS[item.correct] if item.correct is not None else None,
        images=tuple(base / p for p in item.images), sha=hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
    )


def select(bench: BenchmarkFile, names: list[str] | None = None, limit: int | None = None) -> list[Item]:
    """The items of the named benchmarks (short names like "vqa-rad" or the dataset field's own values), in
    file order; `limit` keeps the first N of each. Checks that their image files exist."""
    available = bench.datasets
    chosen = available
    if names:
        chosen = []
        for name in names:
            hits = [d for d in available if _key(d) == _key(name)] or \
                   [d for d in available if _key(d).startswith(_key(name))]
            if not hits:
                raise BenchmarkError(f"{bench.path}: no benchmark matches {name!r}; it holds: {', '.join(available)}")
            chosen += [d for d in hits if d not in chosen]
    counts: dict[str, int] = {}
    items = []
    for item in bench.items:
        if item.dataset in chosen and (limit is None or counts.get(item.dataset, 0) < limit):
            counts[item.dataset] = counts.get(item.dataset, 0) + 1
            items.append(item)
    missing = [p for item in items for p in item.images if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise BenchmarkError(f"{len(missing)} image file(s) not found (e.g. {shown}); image paths are relative to "
                             f"the benchmark file's folder, or to --images DIR (unpack images.zip there)")
    return items
