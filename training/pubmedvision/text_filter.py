"""Stage 1, text filter: keep records whose caption names at least ``min_terms`` medical terms (the paper: 5).

Only the caption is counted, not the inline mentions: a record should not pass because the article around
the figure is medical while the figure's own caption says little.
"""

from __future__ import annotations

from functools import lru_cache

from training.pubmedvision import hf
from training.pubmedvision.lexicon import Lexicon
from training.pubmedvision.records import AtomicJsonl
from training.pubmedvision.stage import Context, StageReport


@lru_cache(maxsize=4)
def _lexicon(path: str) -> Lexicon:
    return Lexicon.from_file(path)  # once per worker process


def count_terms(batch: dict, lexicon: str) -> dict:
    lex = _lexicon(lexicon)
    return {"medical_terms": [lex.count(caption) for caption in batch["caption"]]}


def run(ctx: Context, report: StageReport) -> None:
    settings = ctx.config.text_filter
    paths = ctx.paths
    min_terms = settings.min_terms
    hf.show_progress(ctx.progress)
    with hf.scratch(paths.dir) as cache:
        ds = hf.load_jsonl([paths.output("ingest")], hf.BASE_COLUMNS, cache)
        num_proc = hf.processes(ctx.num_proc, len(ds))
        ds = ds.map(count_terms, batched=True, fn_kwargs={"lexicon": str(settings.lexicon)}, num_proc=num_proc,
                    desc="text filter: counting medical terms")
        passed = ds.filter(lambda n: n >= min_terms, input_columns="medical_terms",
                           desc="text filter: keeping")
        failed = ds.filter(lambda n: n < min_terms, input_columns="medical_terms",
                           desc="text filter: rejecting")
        report.records_in = len(ds)
        with AtomicJsonl(paths.output("text")) as kept:
            kept.write_all(passed)
        with AtomicJsonl(paths.rejected("text")) as rejected:
            for row in failed.select_columns(["id", "medical_terms"]):
                rejected.write({"id": row["id"], "reason": "too_few_medical_terms",
                                "detail": f"{row['medical_terms']} medical terms (fewer than {min_terms})"})
        report.records_out = kept.count
        if rejected.count:
            report.rejected["too_few_medical_terms"] = rejected.count
        report.extra["lexicon"] = {"path": str(settings.lexicon), "terms": _lexicon(str(settings.lexicon)).size}
