"""Per-benchmark accuracy with Wilson 95 % intervals, written as report.md + report.json; and the side-by-side
comparison of two runs over the same items."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .benchmark import KNOWN, short_name
from .runner import RunStore
from .stats import mcnemar_exact, wilson

REPORT_MD, REPORT_JSON = "report.md", "report.json"


def _accuracy(correct: int, n: int) -> dict:
    low, high = wilson(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else None, "ci_low": low, "ci_high": high}


def summarize(records: Iterable[dict]) -> dict[str, dict]:
    """{dataset: {n, correct, accuracy, ci_low, ci_high, unparsed, strict_accuracy, official_accuracy, subsets}}
    in the order the datasets first appear. `unparsed`: replies this protocol's parser could not read (for the
    official parser: the replies the released scorer would have failed on)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["dataset"], []).append(record)
    summary = {}
    for dataset, rows in groups.items():
        entry = _accuracy(sum(r["correct"] for r in rows), len(rows))
        entry["unparsed"] = sum(r["letter"] is None for r in rows)
        entry["official_accuracy"] = sum(r["official_correct"] for r in rows) / len(rows)
        entry["strict_accuracy"] = sum(r["strict_correct"] for r in rows) / len(rows)
        subsets: dict[str, list[dict]] = {}
        for r in rows:
            if r.get("subset"):
                subsets.setdefault(r["subset"], []).append(r)
        entry["subsets"] = {name: _accuracy(sum(r["correct"] for r in sub), len(sub)) for name, sub in subsets.items()}
        summary[dataset] = entry
    return summary


def overall(records: list[dict]) -> dict:
    """All items together (the released scorer's "total score for multiple-choice questions")."""
    return _accuracy(sum(r["correct"] for r in records), len(records))


def write_report(folder: str | Path) -> dict:
    """report.json and report.md of a run folder, from its results.jsonl; returns the JSON content."""
    store = RunStore(folder)
    meta, records = store.meta(), store.records()
    report = {"run": meta, "benchmarks": summarize(records), "overall": overall(records)}
    (store.folder / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (store.folder / REPORT_MD).write_text(_markdown(report))
    return report


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _published(dataset: str) -> str:
    short = short_name(dataset)
    if short is None:
        return "–"
    _, seven, thirty_four = KNOWN[short]
    return f"{seven} / {thirty_four}"


def _markdown(report: dict) -> str:
    meta, settings = report["run"], report["run"]["settings"]
    decoding = "greedy" if settings.get("greedy") else (
        f"sampling: temperature {settings['temperature']}, top-k {settings['top_k']}, "
        f"repetition penalty {settings['repetition_penalty']}, seed {settings['seed']}")
    parser = "strict (one unambiguous option)" if settings["protocol"] == "deterministic" else "official letter regex"
    lines = [
        f"# Evaluation: {meta['label']}",
        "",
        f"- protocol: **{settings['protocol']}** ({decoding}; at most {settings['max_new_tokens']} new tokens; "
        f"parser: {parser})",
        f"- model: `{json.dumps(meta['model'], ensure_ascii=False)}`",
        f"- data: `{meta['data']}` (SHA-256 {meta['data_sha256'][:12]}…)",
        "",
        "| benchmark | n | accuracy % | 95 % CI (Wilson) | unparsed | official parser % | strict parser % "
        "| published 7B / 34B % |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for dataset, s in report["benchmarks"].items():
        lines.append(f"| {dataset} | {s['n']} | {_pct(s['accuracy'])} | {_pct(s['ci_low'])}–{_pct(s['ci_high'])} "
                     f"| {s['unparsed']} | {_pct(s['official_accuracy'])} | {_pct(s['strict_accuracy'])} "
                     f"| {_published(dataset)} |")
    total = report["overall"]
    lines += [f"| **all** | {total['n']} | {_pct(total['accuracy'])} | {_pct(total['ci_low'])}–"
              f"{_pct(total['ci_high'])} | | | | |", ""]
    subsets = [(d, name, s) for d, b in report["benchmarks"].items() for name, s in b["subsets"].items()]
    if subsets:
        lines += ["## Subsets", "", "| benchmark | subset | n | accuracy % | 95 % CI |", "|---|---|---:|---:|---|"]
        lines += [f"| {d} | {name} | {s['n']} | {_pct(s['accuracy'])} | {_pct(s['ci_low'])}–{_pct(s['ci_high'])} |"
                  for d, name, s in subsets]
        lines.append("")
    lines += ["Published scores: the HuatuoGPT-Vision paper (sampled, official parser), so a run of the official "
              "protocol is the comparable one; its MMMU figure is on the test set, while the bundled file holds the "
              "validation split. Unparsed replies count as wrong.", ""]
    return "\n".join(lines)


# --- comparison --------------------------------------------------------------------------------------------------
def compare(folder_a: str | Path, folder_b: str | Path) -> dict:
    """Two runs side by side over the items both answered (paired by id and content), per benchmark."""
    a, b = RunStore(folder_a), RunStore(folder_b)
    meta_a, meta_b = a.meta(), b.meta()
    records_b = {(r["id"], r["item"]): r for r in b.records()}
    paired: dict[str, list[tuple[dict, dict]]] = {}
    for ra in a.records():
        rb = records_b.get((ra["id"], ra["item"]))
        if rb is not None:
            paired.setdefault(ra["dataset"], []).append((ra, rb))
    rows = {}
    for dataset, pairs in paired.items():
        sa = _accuracy(sum(ra["correct"] for ra, _ in pairs), len(pairs))
        sb = _accuracy(sum(rb["correct"] for _, rb in pairs), len(pairs))
        only_a = sum(ra["correct"] and not rb["correct"] for ra, rb in pairs)
        only_b = sum(rb["correct"] and not ra["correct"] for ra, rb in pairs)
        rows[dataset] = {
            "n": len(pairs), "a": sa, "b": sb,
            "difference": sb["accuracy"] - sa["accuracy"],
            "within_ci": sa["ci_low"] <= sb["ci_high"] and sb["ci_low"] <= sa["ci_high"],
            "both_right": sum(ra["correct"] and rb["correct"] for ra, rb in pairs),
            "only_a_right": only_a,
            "only_b_right": only_b,
            "both_wrong": sum(not ra["correct"] and not rb["correct"] for ra, rb in pairs),
            "same_letter": sum(ra["letter"] == rb["letter"] for ra, rb in pairs),
            "mcnemar_p": mcnemar_exact(only_a, only_b),
        }
    notes = []
    if meta_a["data_sha256"] != meta_b["data_sha256"]:
        notes.append("the two runs used different benchmark files; only items with the same content are paired")
    if meta_a["settings"] != meta_b["settings"]:
        notes.append(f"the runs used different settings: {meta_a['settings']} vs {meta_b['settings']}")
    return {"a": {"folder": str(a.folder), "label": meta_a["label"], "model": meta_a["model"]},
            "b": {"folder": str(b.folder), "label": meta_b["label"], "model": meta_b["model"]},
            "benchmarks": rows, "notes": notes}


def comparison_markdown(result: dict) -> str:
    a, b = result["a"]["label"], result["b"]["label"]
    lines = [
        f"# {a} (A) vs {b} (B)",
        "",
        "| benchmark | n | A % (95 % CI) | B % (95 % CI) | B − A (points) | within CIs | both right | only A | "
        "only B | both wrong | same letter | McNemar p |",
        "|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, r in result["benchmarks"].items():
        ra, rb = r["a"], r["b"]
        lines.append(
            f"| {dataset} | {r['n']} | {_pct(ra['accuracy'])} ({_pct(ra['ci_low'])}–{_pct(ra['ci_high'])}) "
            f"| {_pct(rb['accuracy'])} ({_pct(rb['ci_low'])}–{_pct(rb['ci_high'])}) | {100 * r['difference']:+.1f} "
            f"| {'yes' if r['within_ci'] else '**no**'} | {r['both_right']} | {r['only_a_right']} "
            f"| {r['only_b_right']} | {r['both_wrong']} | {r['same_letter']} | {r['mcnemar_p']:.3g} |")
    lines += ["", "Within CIs: the two Wilson 95 % intervals overlap. Paired counts are over the items both runs "
              "answered; McNemar's exact test asks whether \"only A right\" and \"only B right\" differ by more "
              "than chance.", ""]
    lines += [f"Note: {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{result['a']['label']}-vs-{result['b']['label']}".replace("/", "_")
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(comparison_markdown(result))
    js.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return md, js
