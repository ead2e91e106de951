"""What every stage shares: where a shard's files are, the statistics report, and when a stage is up to date.

Each stage of each shard writes ``<stage>.jsonl`` (the records that pass), ``<stage>.rejected.jsonl`` (id, reason,
detail of those that do not) and ``<stage>.stats.json`` (counts in and out, rejections by reason, timings). The
report is written last and carries a fingerprint of the stage's settings and of its input's fingerprint, so a
stage whose report matches is skipped, and changing a setting reruns that stage and those after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from training.pubmedvision.config import PipelineConfig
from training.pubmedvision.records import write_json

STAGES = ("ingest", "text", "image", "dedup", "reformat", "export")
SCHEMA_VERSION = 1


class StageError(RuntimeError):
    """A stage cannot run (its input is missing or out of date, a file is unreadable); the message says why."""


@dataclass(frozen=True)
class ShardPaths:
    work_dir: Path
    shard_index: int
    num_shards: int

    @property
    def dir(self) -> Path:
        return self.shard_dir(self.shard_index)

    def shard_dir(self, index: int) -> Path:
        return self.work_dir / f"shard-{index:05d}-of-{self.num_shards:05d}"

    def output(self, stage: str, shard: int | None = None) -> Path:
        return self.shard_dir(self.shard_index if shard is None else shard) / f"{stage}.jsonl"

    def rejected(self, stage: str) -> Path:
        return self.dir / f"{stage}.rejected.jsonl"

    def stats(self, stage: str, shard: int | None = None) -> Path:
        return self.shard_dir(self.shard_index if shard is None else shard) / f"{stage}.stats.json"


@dataclass
class Context:
    config: PipelineConfig
    paths: ShardPaths
    progress: bool = True

    @property
    def num_proc(self) -> int:
        return self.config.num_proc


@dataclass
class StageReport:
    stage: str
    shard: str
    fingerprint: str
    records_in: int = 0
    records_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    complete: bool = True
    extra: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def to_json(self) -> dict:
        seconds = time.perf_counter() - self.started
        return {
            "stage": self.stage,
            "shard": self.shard,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "complete": self.complete,
            "seconds": round(seconds, 3),
            "records_per_s": round(self.records_in / seconds, 1) if seconds > 0 else None,
            **self.extra,
            "fingerprint": self.fingerprint,
            "schema": SCHEMA_VERSION,
        }


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def file_identity(path: Path) -> list:
    """What identifies a file's content cheaply: path, size and modification time."""
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def read_report(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA_VERSION else None


def save_report(path: Path, report: StageReport) -> dict:
    data = report.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return data
