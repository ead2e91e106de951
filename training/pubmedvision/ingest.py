"""Stage 0, ingest: read the input JSONL files, bring each record into the pipeline's schema, keep this shard's.

Lines that are not JSON, or records without images or caption, are rejected with the file and line named; a
record id seen twice keeps its first record. Rejections that have no id to shard by are reported by shard 0 only,
so that the shards' reports add up.
"""

from __future__ import annotations

import json

from tqdm import tqdm

from training.pubmedvision.records import AtomicJsonl, RecordError, normalize, shard_of
from training.pubmedvision.stage import Context, StageReport


def run(ctx: Context, report: StageReport) -> None:
    config, paths = ctx.config, ctx.paths
    reports_unsharded = paths.shard_index == 0
    seen: set[str] = set()
    with AtomicJsonl(paths.output("ingest")) as kept, AtomicJsonl(paths.rejected("ingest")) as rejected:

        def reject(record_id: str | None, where: str, reason: str, detail: str) -> None:
            report.rejected[reason] += 1
            rejected.write({"id": record_id, "where": where, "reason": reason, "detail": detail})

        for path in config.input:
            image_root = config.image_root or path.parent
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = tqdm(f, desc=f"ingest {path.name}", unit=" records", disable=not ctx.progress)
                for n, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    where = f"{path}:{n}"
                    try:
                        raw = json.loads(line)
                    except json.JSONDecodeError as exc:
                        if reports_unsharded:
                            report.records_in += 1
                            reject(None, where, "malformed_json", f"not valid JSON: {exc.msg}")
                        continue
                    try:
                        record = normalize(raw, image_root)
                    except RecordError as exc:
                        if reports_unsharded:
                            report.records_in += 1
                            reject(None, where, exc.reason, str(exc))
                        continue
                    if shard_of(record["id"], paths.num_shards) != paths.shard_index:
                        continue
                    report.records_in += 1
                    if record["id"] in seen:
                        reject(record["id"], where, "duplicate_id", "an earlier record has the same id")
                        continue
                    seen.add(record["id"])
                    kept.write(record)
    report.records_out = kept.count
