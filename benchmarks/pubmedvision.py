"""Throughput of the PubMedVision data pipeline, stage by stage, on a generated corpus.

    python benchmarks/pubmedvision.py [--records 10000] [--num-proc 2] [--concurrency 16] [--keep DIR] [--json]

Generates records with small JPEG images (352×352) and medical captions, then runs every stage with
`training.pubmedvision.pipeline` and reports records per second from each stage's own report. The reformat stage
talks over HTTP to the loopback chat server (`tests.support.loopback_server`, answering at once) running
in its own process, so the figure is the pipeline's own overhead per request: reading and encoding the image,
the request, validating the reply, the cache and the output. A second run of the reformat stage in a fresh work
folder shows the reply cache: every reply comes from the cache and no request is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=16, help="parallel requests in the reformat stage")
    parser.add_argument("--keep", type=Path, help="generate the corpus here and keep it (reused if present)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tests.support.pubmedvision_corpus import write_corpus
    from training.pubmedvision.config import load_config
    from training.pubmedvision.pipeline import Pipeline
    from training.pubmedvision.stage import STAGES

    work = Path(tempfile.mkdtemp(prefix="huatuo-pmv-bench-"))
    root = args.keep or work / "corpus"
    server = subprocess.Popen([sys.executable, "-m", "tests.support.loopback_server"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        generate_s = None
        if not (root / "records.jsonl").is_file():
            print(f"generating {args.records} records in {root} …", file=sys.stderr)
            start = time.perf_counter()
            write_corpus(root, args.records, seed=1)
            generate_s = time.perf_counter() - start

        def run(name: str, cache: Path) -> dict:
            config_path = work / f"{name}.yaml"
            reformat = {"base_url": base_url, "model": "loopback", "api_key_env": None,
                        "concurrency": args.concurrency, "cache": str(cache)}
            config_path.write_text(f"input: {root / 'records.jsonl'}\nwork_dir: {work / name}\n"
                                   f"num_proc: {args.num_proc}\nreformat: {json.dumps(reformat)}\n")
            log = lambda line: print(line, file=sys.stderr)  # noqa: E731
            pipeline = Pipeline(load_config(config_path), progress=False, log=log)
            return pipeline.run(list(STAGES))

        cache = work / "reply-cache.sqlite"
        first = run("first", cache)
        cached = run("cached", cache)["reformat"]
    finally:
        server.terminate()
        server.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    stages = {name: {"records_in": r["records_in"], "records_out": r["records_out"], "seconds": r["seconds"],
                     "records_per_s": r["records_per_s"]} for name, r in first.items()}
    result = {
        "records": args.records,
        "num_proc": args.num_proc,
        "concurrency": args.concurrency,
        "cpu_count": os.cpu_count(),
        "generate_seconds": round(generate_s, 1) if generate_s is not None else None,
        "stages": stages,
        "reformat_requests": first["reformat"]["requests"],
        "reformat_from_cache": {"records_per_s": cached["records_per_s"], "cache_hits": cached["cache_hits"],
                                "requests": cached["requests"]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.records} records, num_proc {args.num_proc}, {args.concurrency} parallel requests")
        for name, s in stages.items():
            print(f"  {name:<9} {s['records_in']:>6} → {s['records_out']:>6} records  {s['seconds']:7.1f} s  "
                  f"{s['records_per_s']:>8,.0f} records/s")
        print(f"  reformat again from the cache: {cached['records_per_s']:,.0f} records/s, "
              f"{cached['requests']} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
