"""Input records, JSONL files that survive being killed mid-write, and the shard a record belongs to."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from training.pubmedvision.stage import ShardPaths

T = TypeVar("T")

# Field names of common PubMed figure exports (PMC-OA, LLaVA-Med PMC, PMC-Inline), first match wins.
ID_FIELDS = ("id", "pair_id", "uid")
IMAGE_FIELDS = ("images", "image", "image_paths", "image_path", "image_file")
CAPTION_FIELDS = ("caption", "fig_caption")
MENTION_FIELDS = ("mentions", "inline_mentions", "inline", "fig_mentions")


class RecordError(ValueError):
    """A record that cannot be used; ``reason`` is the short code counted in the statistics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def normalize(raw: object, image_root: Path) -> dict:
    """One input record as the pipeline's own schema: id, images (as given), image_files (resolved), caption,
    mentions."""
    if not isinstance(raw, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(raw).__name__}")
    images = _first(raw, IMAGE_FIELDS)
    if isinstance(images, str):
        images = [images]
    if not images or not isinstance(images, list) or not all(isinstance(p, str) and p.strip() for p in images):
        raise RecordError("missing_images", f"no image paths (fields tried: {', '.join(IMAGE_FIELDS)})")
    caption = _first(raw, CAPTION_FIELDS)
    if not isinstance(caption, str) or not caption.strip():
        raise RecordError("missing_caption", f"no caption (fields tried: {', '.join(CAPTION_FIELDS)})")
    mentions = _first(raw, MENTION_FIELDS) or []
    if isinstance(mentions, str):
        mentions = [mentions]
    if not isinstance(mentions, list):
        raise RecordError("bad_mentions", "mentions must be text or a list of texts")
    mentions = [m.strip() for m in mentions if isinstance(m, str) and m.strip()]
    record_id = _first(raw, ID_FIELDS)
    if record_id is None or str(record_id).strip() == "":
        # Stable across runs and machines, so that sharding and the reply cache agree.
        record_id = hashlib.sha256(("\n".join(images) + "\n" + caption).encode()).hexdigest()[:20]
    return {
        "id": str(record_id),
        "images": images,
        "image_files": [str((image_root / p) if not Path(p).is_absolute() else Path(p)) for p in images],
        "caption": caption.strip(),
        "mentions": mentions,
    }


def _first(raw: dict, names: tuple[str, ...]):
    for name in names:
        if name in raw:
            return raw[name]
    return None


def shard_of(record_id: str, num_shards: int) -> int:
    """The shard a record belongs to: the same on every machine and in every run."""
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def read_jsonl(path: Path) -> Iterator[dict]:
    """The records of a JSONL file written by the pipeline (bad lines are an error: these files are our own)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {n}: not valid JSON ({exc.msg})") from exc


def count_records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class AtomicJsonl:
    """Writes a JSONL file under a temporary name and renames it into place only when complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()/abort()
        self.count = 0

    def write(self, record: dict) -> None:
        self._f.write(dumps(record) + "\n")
        self.count += 1

    def write_all(self, records: Iterable[dict]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicJsonl:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def recover_appended_jsonl(path: Path, project: Callable[[dict], T] = lambda r: r) -> list[T]:
    """``project`` of each complete record of a JSONL file that is appended to record by record; a last line
    cut off by a kill is removed from the file so that appending can go on."""
    if not path.exists():
        return []
    records: list[T] = []
    good_end = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                records.append(project(json.loads(line)))
            except json.JSONDecodeError:
                break
            good_end += len(line)
    if good_end != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def write_empty(paths: ShardPaths, stage: str) -> None:
    """The files of a stage that got no records."""
    for path in (paths.output(stage), paths.rejected(stage)):
        with AtomicJsonl(path):
            pass


def write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
