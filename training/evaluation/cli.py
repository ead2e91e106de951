"""`huatuo eval`: the medical VQA benchmarks through the engine (GGUF) or the transformers reference.

    huatuo eval --data medical_multimodel_evaluation_data.json --model DIR [--model DIR2] --out RUNS
                [--bench vqa-rad,slake] [--protocol official|deterministic] [--limit N] [--json]
    huatuo eval --data FILE --reference CHECKPOINT --out RUNS
    huatuo eval compare RUN_A RUN_B [--out DIR] [--json]

Each model gets a run folder OUT/<model>.<protocol>/ (run.json, results.jsonl, report.md, report.json). Running
the same command again continues where it stopped. With two or more models, the first is compared with each
of the others (OUT/compare-A-vs-B.md and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--data", type=Path, help="the benchmark JSON (medical_multimodel_evaluation_data.json)")
    parser.add_argument("--images", type=Path, help="folder the image paths are relative to (default: the JSON's)")
    parser.add_argument("--bench", help="comma-separated benchmarks: vqa-rad, slake, pathvqa, pmc-vqa, omnimedvqa, "
                                        "mmmu, or the file's own dataset names (default: all)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="converted model folder (repeat to compare, e.g. F16 and Q4_K_M)")
    parser.add_argument("--reference", type=Path, help="a checkpoint folder run in transformers (needs torch)")
    parser.add_argument("--out", type=Path, help="folder for the run folders and reports")
    parser.add_argument("--protocol", choices=["official", "deterministic"], default="official",
                        help="official: the published sampling and letter parser; deterministic: greedy and a "
                             "strict parser (default: official)")
    parser.add_argument("--limit", type=int, help="only the first N items of each benchmark")
    parser.add_argument("--max-tokens", type=int, help="new tokens per answer (default: 256, as published)")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed of the official protocol")
    parser.add_argument("--threads", type=int, help="default: physical cores")
    parser.add_argument("--ctx", type=int, help="context size (default: the model's)")
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object per run, keyed by benchmark")
    sub = parser.add_subparsers(dest="eval_command", metavar="compare")
    comparison = sub.add_parser("compare", help="compare two finished runs item by item")
    comparison.add_argument("runs", nargs=2, type=Path, metavar="RUN", help="run folders (A, then B)")
    comparison.add_argument("--out", type=Path, help="also write compare-A-vs-B.md/.json here")
    comparison.add_argument("--json", action="store_true", help="print the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    from .benchmark import BenchmarkError
    from .runner import RunError

    try:
        if getattr(args, "eval_command", None) == "compare":
            return _compare(args)
        return _evaluate(args)
    except (BenchmarkError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _evaluate(args) -> int:
    if args.data is None or args.out is None or not (args.model or args.reference):
        print("error: give --data FILE, --out DIR and at least one --model DIR or --reference CHECKPOINT",
              file=sys.stderr)
        return EXIT_USAGE
    from conversion.errors import ConversionError
    from inference.engine import EngineError
    from inference.store.gguf_check import ModelFileError

    from . import benchmark, official, report, runner
    from .protocol import Protocol

    protocol = Protocol(args.protocol, args.max_tokens or official.MAX_NEW_TOKENS, args.seed)
    bench = benchmark.load(args.data, args.images)
    names = [n.strip() for n in args.bench.split(",") if n.strip()] if args.bench else None
    items = benchmark.select(bench, names, args.limit)
    if not items:
        print(f"error: {args.data} holds no multiple-choice items to run", file=sys.stderr)
        return EXIT_FAILED
    sources = [("model", m) for m in args.model] + ([("reference", args.reference)] if args.reference else [])
    folders: list[Path] = []
    failed = cancelled = False
    for kind, source in sources:
        try:
            backend = _backend(kind, source, args)
        except ImportError as exc:
            print(f"error: --reference needs torch and transformers (the train extra): {exc}", file=sys.stderr)
            failed = True
            continue
        except (ModelFileError, EngineError, ConversionError, OSError, ValueError) as exc:
            print(f"error: {source}: {exc}", file=sys.stderr)
            failed = True
            continue
        folder = args.out / runner.run_name(backend.label, protocol)
        while folder in folders:
            folder = folder.with_name(folder.name + "+")
        try:
            outcome = runner.run(backend, bench, items, folder, protocol, progress=not args.json)
        except EngineError as exc:  # the model did not load
            print(f"error: {source}: {exc}", file=sys.stderr)
            failed = True
            continue
        folders.append(folder)
        for error in outcome.errors:
            print(f"error: {error}", file=sys.stderr)
        failed |= bool(outcome.errors)
        result = report.write_report(folder)
        _print_run(result, folder, args.json)
        if outcome.cancelled:
            answered = outcome.done_before + outcome.answered
            print(f"cancelled: {answered} of {outcome.total} items answered and kept in {folder}; "
                  f"run the same command again to continue", file=sys.stderr)
            cancelled = True
            break
    for other in folders[1:]:
        md, _ = report.write_comparison(report.compare(folders[0], other), args.out)
        if not args.json:
            print(f"comparison: {md}")
    return EXIT_CANCELLED if cancelled else EXIT_FAILED if failed else EXIT_OK


def _backend(kind: str, source: Path, args):
    from .backends import EngineBackend, ReferenceBackend

    if kind == "model":
        return EngineBackend(source, threads=args.threads, ctx=args.ctx, gpu_layers=args.gpu_layers)
    return ReferenceBackend(source, threads=args.threads)


def _print_run(result: dict, folder: Path, as_json: bool) -> None:
    benchmarks = result["benchmarks"]
    if as_json:
        keep = ("n", "correct", "accuracy", "ci_low", "ci_high", "unparsed")
        print(json.dumps({name: {k: s[k] for k in keep} for name, s in benchmarks.items()}, ensure_ascii=False))
        return
    print(f"{result['run']['label']} ({result['run']['settings']['protocol']})")
    for name, s in benchmarks.items():
        print(f"  {name:28} n={s['n']:<6} {100 * s['accuracy']:5.1f} %  "
              f"(95 % CI {100 * s['ci_low']:.1f}–{100 * s['ci_high']:.1f})  unparsed {s['unparsed']}")
    print(f"report: {folder / 'report.md'}")


def _compare(args) -> int:
    from . import report

    result = report.compare(*args.runs)
    if args.out:
        report.write_comparison(result, args.out)
    print(json.dumps(result, ensure_ascii=False) if args.json else report.comparison_markdown(result), end="\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="huatuo eval", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
