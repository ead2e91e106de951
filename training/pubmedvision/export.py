"""Stage 5, export: the reformatted records as the two PubMedVision sets.

    alignment.jsonl    one of the fixed alignment questions → the description
    instruction.jsonl  the generated question (asked from a role's point of view) → the answer

Rows have the PubMedVision fields (id, image, body_part, modality, conversations) and follow the order of the
deduplicated records, so the files are the same whatever order the requests finished in.
"""

from __future__ import annotations

from inference.prompt import IMAGE_PLACEHOLDER
from training.pubmedvision import hf
from training.pubmedvision.records import AtomicJsonl, read_jsonl
from training.pubmedvision.stage import Context, StageReport

REFORMAT_COLUMNS = {"id": "string", "images": ["string"], "modality": "string", "body_part": "string",
                    "description": "string", "alignment_question": "string", "role": "string",
                    "question": "string", "answer": "string", "prompt_tokens": "int64",
                    "completion_tokens": "int64", "cached": "bool"}


def sample(row: dict, question: str, answer: str, image_tags: bool) -> dict:
    tags = (IMAGE_PLACEHOLDER + "\n") * len(row["images"]) if image_tags else ""
    return {"id": row["id"], "image": list(row["images"]), "body_part": row["body_part"],
            "modality": row["modality"],
            "conversations": [{"from": "human", "value": tags + question}, {"from": "gpt", "value": answer}]}


def run(ctx: Context, report: StageReport) -> None:
    paths = ctx.paths
    image_tags = ctx.config.output.image_tags
    order = {r["id"]: n for n, r in enumerate(read_jsonl(paths.output("dedup")))}
    hf.show_progress(ctx.progress)
    with hf.scratch(paths.dir) as cache:
        ds = hf.load_jsonl([paths.output("reformat")], REFORMAT_COLUMNS, cache)
        report.records_in = len(ds)
        # Rows of records no longer in the dedup output (none, unless it changed since) are left out.
        rows = sorted((order[record_id], n) for n, record_id in enumerate(ds["id"]) if record_id in order)
        ds = ds.select([n for _, n in rows])
        with AtomicJsonl(paths.dir / "alignment.jsonl") as alignment, \
                AtomicJsonl(paths.dir / "instruction.jsonl") as instruction:
            for row in ds:
                alignment.write(sample(row, row["alignment_question"], row["description"], image_tags))
                instruction.write(sample(row, row["question"], row["answer"], image_tags))
    report.records_out = alignment.count
    report.extra["samples"] = {"alignment": alignment.count, "instruction": instruction.count}
    report.extra["outputs"] = [str(paths.dir / "alignment.jsonl"), str(paths.dir / "instruction.jsonl")]
