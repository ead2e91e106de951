"""What the model manager shows below its installed list for the selected model: why it cannot be used, in full,
and its last `huatuo verify` result (verify.json)."""

from __future__ import annotations

from inference.store.models import InstalledModel, read_verification


def details_text(model: InstalledModel) -> str:
    """What the installed list has no room for: why a broken model cannot be used, in full, and its quality."""
    problem = "" if model.usable else f"Cannot be used: {model.problem}\n"
    return problem + quality_text(model)


def quality_text(model: InstalledModel) -> str:
    """The model's last `huatuo verify` result against the transformers reference, one measure a line."""
    result = read_verification(model)
    if result is None:
        return ("Quality: not verified against the reference for these files. With the checkpoint it was converted "
                f"from: huatuo verify CHECKPOINT_FOLDER \"{model.folder}\"")
    lines = [f"Quality: {'passed' if result.passed else 'FAILED'} (huatuo verify, {result.verified_at}; text "
             f"{result.quantization}, projector {result.mmproj_quantization})"]
    for row in result.rows:
        bound = "" if row.limit is None else f" (limit {'≤' if row.bound == 'max' else '≥'} {row.limit:g})"
        lines.append(f"  {row.label}: {row.value:.6g}{bound} {'ok' if row.ok else 'FAIL'}")
    lines += [f"  failed: {failure}" for failure in result.failures]
    return "\n".join(lines)
