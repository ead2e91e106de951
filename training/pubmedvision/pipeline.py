"""Running the stages in order for one shard: skipping those that are up to date, saving each one's report.

    ingest → text → image → dedup → reformat → export

A stage is up to date when its report exists, says it completed, and carries the fingerprint computed now from
its settings and its input stage's fingerprint. ``--dry-run`` runs the local stages (they cost nothing) and
replaces the reformat stage by a cost estimate.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from training.pubmedvision.config import PipelineConfig
from training.pubmedvision.records import write_json
from training.pubmedvision.stage import (
    STAGES,
    Context,
    ShardPaths,
    StageError,
    StageReport,
    file_identity,
    fingerprint,
    read_report,
    save_report,
)

Log = Callable[[str], None]


def stage_settings(config: PipelineConfig, stage: str) -> object:
    """The settings whose change makes a stage's output stale (paths are identified by size and date too)."""
    if stage == "ingest":
        return {"input": [file_identity(p) for p in config.input],
                "image_root": str(config.image_root) if config.image_root else None}
    if stage == "text":
        return {"lexicon": file_identity(config.text_filter.lexicon), "min_terms": config.text_filter.min_terms}
    if stage == "image":
        return {**dataclasses.asdict(config.image_filter), "hash_size": config.dedup.hash_size}
    if stage == "dedup":
        return dataclasses.asdict(config.dedup)
    if stage == "reformat":
        r = config.reformat
        if r is None:
            return None
        from training.pubmedvision.prompts import PROMPT_VERSION

        return {"model": r.model, "temperature": r.temperature, "max_tokens": r.max_tokens, "json_mode": r.json_mode,
                "image_detail": r.image_detail, "max_image_side": r.max_image_side, "seed": r.seed,
                "prompt": PROMPT_VERSION}
    if stage == "export":
        return dataclasses.asdict(config.output)
    raise ValueError(stage)


class Pipeline:
    def __init__(self, config: PipelineConfig, shard_index: int = 0, num_shards: int = 1, progress: bool = True,
                 log: Log = print) -> None:
        if num_shards < 1 or not 0 <= shard_index < num_shards:
            raise StageError(f"shard index {shard_index} is not in 0..{num_shards - 1}")
        self.config = config
        self.paths = ShardPaths(config.work_dir, shard_index, num_shards)
        self.ctx = Context(config, self.paths, progress)
        self.log = log

    def fingerprint(self, stage: str) -> str:
        """The fingerprint the stage's output must carry; its input stage must be done."""
        index = STAGES.index(stage)
        settings = stage_settings(self.config, stage)
        if index == 0:
            return fingerprint(stage, settings, self.paths.shard_index, self.paths.num_shards)
        previous = STAGES[index - 1]
        shards = [self.paths.shard_index]
        if stage == "dedup" and self.config.dedup.scope == "global":
            shards = list(range(self.paths.num_shards))
        inputs, missing = [], []
        for shard in shards:
            report = read_report(self.paths.stats(previous, shard))
            if report is None:
                missing.append(str(self.paths.stats(previous, shard)))
            else:
                inputs.append([report["fingerprint"], report["records_out"]])
        if missing and len(shards) > 1:
            raise StageError("deduplication across shards (dedup.scope: global) needs the image-filter output of "
                             f"every shard in {self.paths.work_dir}; missing: {', '.join(missing)}. Run every shard "
                             "up to the image stage (--until image) first, or set dedup.scope: shard")
        if missing:
            raise StageError(f"stage {stage} needs the output of stage {previous} (no report {missing[0]}); "
                             "run it first")
        return fingerprint(stage, settings, inputs)

    def up_to_date(self, stage: str) -> dict | None:
        try:
            expected = self.fingerprint(stage)
        except StageError:
            return None
        report = read_report(self.paths.stats(stage))
        if report is not None and report.get("fingerprint") == expected and report.get("complete", True):
            return report
        return None

    def run_stage(self, stage: str, force: bool = False) -> dict:
        if not force:
            current = self.up_to_date(stage)
            if current is not None:
                self.log(f"{stage}: up to date ({current['records_out']} of {current['records_in']} records)")
                return {**current, "skipped": True}
        index = STAGES.index(stage)
        if index > 0:
            previous = STAGES[index - 1]
            if self.up_to_date(previous) is None and not (previous == "reformat" and self._has_report(previous)):
                raise StageError(f"stage {stage} needs stage {previous} to be complete and up to date; run "
                                 f"`--stage {previous}` (or the whole pipeline) first")
        report = StageReport(stage, f"{self.paths.shard_index}/{self.paths.num_shards}", self.fingerprint(stage))
        module = importlib.import_module(f"training.pubmedvision.{_MODULES[stage]}")
        # No report while the stage runs: an interrupted run must not leave new output under an old report.
        self.paths.stats(stage).unlink(missing_ok=True)
        module.run(self.ctx, report)
        data = save_report(self.paths.stats(stage), report)
        self.log(_summary(data))
        return {**data, "skipped": False}

    def _has_report(self, stage: str) -> bool:
        # An incomplete reformat (some records failed for now) can still be exported; a rerun retries them.
        return read_report(self.paths.stats(stage)) is not None

    def estimate(self) -> dict:
        from training.pubmedvision import reformat

        if self.up_to_date("dedup") is None:
            raise StageError("the cost estimate needs the dedup stage to be up to date; run up to --until dedup")
        estimate = reformat.estimate(self.ctx)
        write_json(self.paths.dir / "reformat.estimate.json", estimate)
        return estimate

    def run(self, stages: list[str], dry_run: bool = False, force: bool = False) -> dict[str, dict]:
        """Run the given stages in pipeline order; returns each stage's report (and the estimate, dry run)."""
        results: dict[str, dict] = {}
        for stage in [s for s in STAGES if s in stages]:
            if stage in ("reformat", "export") and self.config.reformat is None:
                self.log(f"{stage}: skipped, the configuration has no 'reformat' section (no chat model server)")
                break
            if dry_run and stage == "reformat":
                results["estimate"] = self.estimate()
                break
            results[stage] = self.run_stage(stage, force=force)
        return results


_MODULES = {"ingest": "ingest", "text": "text_filter", "image": "image_filter", "dedup": "dedup",
            "reformat": "reformat", "export": "export"}


def _summary(report: dict) -> str:
    rejected = ", ".join(f"{reason} {n}" for reason, n in report["rejected"].items())
    line = f"{report['stage']}: {report['records_out']} of {report['records_in']} records kept"
    line += f" ({rejected})" if rejected else ""
    if report["stage"] == "reformat":
        line += (f"; {report['requests']} requests, {report['cache_hits']} from cache, {report['retries']} retries, "
                 f"{report['reasks']} re-asks, ${report['cost_usd_this_run']:.4f} this run")
    return line + f" in {report['seconds']:.1f} s"


def stages_to_run(stage: str | None, until: str | None) -> list[str]:
    if stage is not None:
        return [stage]
    last = STAGES.index(until) if until else len(STAGES) - 1
    return list(STAGES[: last + 1])
