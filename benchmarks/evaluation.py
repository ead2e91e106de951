"""Evaluation throughput: items per second through `huatuo eval`'s runner on a generated benchmark file.

    python benchmarks/evaluation.py [--model DIR] [--per-benchmark 5] [--protocol official] [--max-tokens 4] [--json]

Without --model it builds and converts a tiny random model (F16). The released models answer with a letter
and stop, so the default caps replies at 4 new tokens (a random model never stops on its own). Reported:
items/s over the run (the engine already started), the median seconds the engine spent per item, and the
harness's own share of the time (image preparation, parsing, writing results).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_model(work: Path) -> Path:
    from dataclasses import replace

    from conversion.convert import convert
    from conversion.shapes import TINY
    from tests.support.checkpoints import build_checkpoint

    src = build_checkpoint(work / "tiny", "qwen2", "original", replace(TINY, n_layers=4))
    convert(src, work / "tiny-gguf", "F16")
    return work / "tiny-gguf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a converted model folder (default: build a tiny one)")
    parser.add_argument("--per-benchmark", type=int, default=5, help="items per benchmark (six benchmarks)")
    parser.add_argument("--protocol", choices=["official", "deterministic"], default="official")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tests.support.evaluation_data import write_benchmark
    from training.evaluation import benchmark, runner
    from training.evaluation.backends import EngineBackend
    from training.evaluation.protocol import Protocol

    with tempfile.TemporaryDirectory(prefix="huatuo-eval-bench-") as tmp:
        work = Path(tmp)
        folder = args.model or build_model(work)
        bench = benchmark.load(write_benchmark(work / "data", args.per_benchmark))
        items = benchmark.select(bench)
        backend = EngineBackend(folder, threads=args.threads)
        backend.start()  # loading the model is not part of the throughput
        started = time.perf_counter()
        outcome = runner.run(backend, bench, items, work / "run", Protocol(args.protocol, args.max_tokens),
                             progress=False)
        elapsed = time.perf_counter() - started
        records = runner.RunStore(work / "run").records()
    if outcome.errors or outcome.answered != len(items):
        print(f"the run failed: {outcome.errors[:3]}", file=sys.stderr)
        return 1
    from inference.native import physical_cores

    engine_s = [r["seconds"] for r in records]
    result = {
        "model": backend.label, "threads": args.threads or physical_cores(), "protocol": args.protocol,
        "max_new_tokens": args.max_tokens, "items": len(items),
        "images": sum(len(i.images) for i in items), "seconds": elapsed, "items_per_s": len(items) / elapsed,
        "engine_median_s": statistics.median(engine_s), "harness_share": 1 - sum(engine_s) / elapsed,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']}, {result['threads']} threads, {args.protocol} protocol, "
              f"at most {args.max_tokens} new tokens")
        print(f"{len(items)} items ({result['images']} images) in {elapsed:.2f} s: {result['items_per_s']:.1f} items/s")
        print(f"engine per item (median) {1000 * result['engine_median_s']:.0f} ms; "
              f"harness share of the time {100 * result['harness_share']:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
