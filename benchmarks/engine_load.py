"""Where loading a model goes: our engine against plain llama-cpp-python on the same GGUF pair.

Each load runs in a fresh process, ours and the baseline alternating which goes first in every round (after a round
that is not counted), so that both meet the same page cache. Besides the wall time from the model folder to "ready
to answer", the CPU time of the process that loads the model is split into user time (llama.cpp's own code: parsing,
repacking weights) and system time (the kernel: reading the files, faulting in and clearing the memory the weights
are copied to), with the number of page faults it took (Linux: read from /proc); what is left is waiting for the
disk. Ours also gives its own breakdown (folder check, worker start, text model, vision encoder). The memory of the
loaded process is split too: private (the weights llama.cpp copied or repacked, caches) and file pages (the parts
of the model files used in place, shared with the page cache and with every process that maps the same files).

    python benchmarks/engine_load.py --model DIR [--runs 3] [--threads N] [--read-first] [--settle S]
                                     [--repack-every-load] [--json]

Loads start --settle seconds (5) after the previous one ended: on a virtual machine that hands freed memory back to
its host after a moment (virtio-balloon free page reporting), a load that starts at once reuses the memory the last
one freed and is much faster than one that has to get it from the host again; without the pause, the
engine that starts allocating sooner (the baseline: ours starts its worker process first) gets the cheap memory.

Ours keeps the text model's weights as llama.cpp repacks them for this CPU in a file beside the model
(inference/repacked_weights.py): the round not counted writes it if it is not there yet (while the model is in use;
that load's time and when the file was whole are then reported), and the counted loads map it
(--repack-every-load turns that off, to see what it saves).

--read-first reads both files once before the first round, so that every load finds them in the page cache (as
on a machine with memory to spare that loaded the model before). A load profile is one command away:
`perf record -g python benchmarks/engine_load.py --model DIR --runs 1 --only ours`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's packages, not the benchmark scripts beside this one
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> tuple[float, float, int] | None:
    """(user s, system s, minor page faults) of a live process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS, int(fields[7])


def process_memory(pid: int) -> dict:
    """Private (RssAnon) and file-backed (RssFile) resident memory of a live process, in GB (Linux); {} elsewhere."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    kb = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.startswith(("RssAnon:", "RssFile:"))}
    return {"private_gb": kb["RssAnon"] / 1e6, "file_pages_gb": kb["RssFile"] / 1e6} if len(kb) == 2 else {}


def timed_engine_load(open_engine: Callable):
    """Our engine, ready to answer, and where the time from the model folder to that went: checking the folder,
    starting the worker process, loading the text model, loading the vision encoder."""
    start = time.perf_counter()
    engine = open_engine()
    checked = time.perf_counter()
    engine.start()
    total = time.perf_counter() - start
    native = engine.load_info.get("load_timings", {})
    check = checked - start
    return engine, {"total_s": total, "check_s": check, **native, "process_s": total - check - sum(native.values())}


def baseline_model(folder: Path, threads: int, llava_handler: type | None = None):
    """Plain llama-cpp-python on the folder's GGUF pair, with the context our engine uses: Qwen25VLChatHandler for a
    Qwen2.5-VL model, else `llava_handler` (Llava15ChatHandler by default); returns (Llama, seconds it took)."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Llava15ChatHandler, Qwen25VLChatHandler

    from inference import families
    from inference.native import quiet_native_logs
    from inference.store.manifest import Manifest

    quiet_native_logs()
    manifest = Manifest.read(folder)
    text_path, mmproj_path = manifest.paths(folder)
    family = families.family(manifest.family)
    handler_class = Qwen25VLChatHandler if family is families.QWEN25VL else (llava_handler or Llava15ChatHandler)
    start = time.perf_counter()
    handler = handler_class(clip_model_path=str(mmproj_path), verbose=False)
    llm = llama_cpp.Llama(str(text_path), chat_handler=handler, n_ctx=family.default_context(manifest.context_length),
                          n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    handler._init_mtmd_context(llm)  # otherwise done by the first question: part of loading
    return llm, time.perf_counter() - start


def load_ours(folder: Path, threads: int, keep_repacked: bool = True) -> dict:
    from inference.engine import Engine, EngineSettings

    settings = EngineSettings(n_threads=threads, keep_repacked_weights=keep_repacked)
    engine, parts = timed_engine_load(lambda: Engine.from_folder(folder, settings))
    cpu = process_cpu(engine.pid)  # the worker, which loaded the model (this process only waited for it)
    memory = process_memory(engine.pid)
    repacked = engine.load_info.get("repacked_weights")
    loaded_at = time.perf_counter() - parts["total_s"]
    written_s = wait_until_written(folder, start=loaded_at) if repacked == "written" else None
    engine.close()
    total = parts.pop("total_s")
    return {"load_s": total, "parts_s": parts, **_cpu(cpu), **memory, "repacked_weights": repacked,
            "written_s": written_s}


def wait_until_written(folder: Path, start: float, timeout_s: float = 900.0) -> float | None:
    """Seconds from the load's start until the repacked weights' file, written while the model is in use, is whole
    (its temporary file renamed); None if it was not within timeout_s."""
    from inference.repacked_weights import kept_files

    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        files = kept_files(folder)
        if files and not any(path.name.endswith(".partial") for path in files):
            return time.perf_counter() - start
        time.sleep(0.1)
    return None


def load_baseline(folder: Path, threads: int) -> dict:
    import llama_cpp  # noqa: F401 (imported before the count starts, as ours is by its worker before it loads)

    before = process_cpu(os.getpid())
    _, total = baseline_model(folder, threads)
    after = process_cpu(os.getpid())
    return {"load_s": total, **_cpu(tuple(b - a for a, b in zip(before, after, strict=True)) if after else None),
            **process_memory(os.getpid())}


def _cpu(cpu: tuple | None) -> dict:
    keys = ("user_s", "system_s", "page_faults")
    return dict(zip(keys, cpu, strict=True)) if cpu is not None else dict.fromkeys(keys)


def one_load(which: str, folder: Path, threads: int, settle_s: float = 0.0, keep_repacked: bool = True) -> dict:
    """One load in a fresh process, as a user's first question after starting the app would meet it, started
    `settle_s` after the previous load's process ended."""
    time.sleep(settle_s)
    command = [sys.executable, __file__, "--one", which, "--model", str(folder), "--threads", str(threads),
               *([] if keep_repacked else ["--repack-every-load"])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"the {which} load failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_files(folder: Path) -> None:
    from inference.store.manifest import Manifest

    for path in Manifest.read(folder).paths(folder):
        with open(path, "rb") as file:
            while file.read(1 << 24):
                pass


def summary(loads: list[dict]) -> dict:
    result = {"load_s": median(x["load_s"] for x in loads), "load_runs_s": [x["load_s"] for x in loads]}
    if all(x["user_s"] is not None for x in loads):
        result["user_s"] = median(x["user_s"] for x in loads)
        result["system_s"] = median(x["system_s"] for x in loads)
        result["page_faults"] = median(x["page_faults"] for x in loads)
    for key in ("private_gb", "file_pages_gb"):
        if all(key in x for x in loads):
            result[key] = median(x[key] for x in loads)
    if loads[0].get("repacked_weights"):
        result["repacked_weights"] = sorted({x["repacked_weights"] for x in loads})
    if "parts_s" in loads[0]:
        result["parts_s"] = {key: median(x["parts_s"][key] for x in loads) for key in loads[0]["parts_s"]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a converted model folder")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--read-first", action="store_true", help="read both files once before the first round")
    parser.add_argument("--only", choices=("ours", "baseline"), help="load only one of the two (for a profile)")
    parser.add_argument("--settle", type=float, default=5.0, metavar="S",
                        help="seconds between loads, so that every load meets memory freed as long ago (default 5)")
    parser.add_argument("--repack-every-load", action="store_true",
                        help="ours without its kept repacked weights: llama.cpp repacks the text model at each load")
    parser.add_argument("--one", choices=("ours", "baseline"), help=argparse.SUPPRESS)  # one load, in this process
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from inference.hardware import physical_cores

    threads = args.threads or physical_cores()
    if args.one:
        one = (load_ours(args.model, threads, not args.repack_every_load) if args.one == "ours"
               else load_baseline(args.model, threads))
        print(json.dumps(one))
        return 0
    from inference.repacked_weights import kept_bytes
    from inference.store.gguf_check import check_folder

    check_folder(args.model)  # hashes the files once, if they have not been: every load below trusts the record
    if args.read_first:
        read_files(args.model)
    kinds = [args.only] if args.only else ["ours", "baseline"]
    keep = not args.repack_every_load
    uncounted = {}
    for kind in kinds:  # a round not counted: the first load after a pause is slower, whichever it is
        uncounted[kind] = one_load(kind, args.model, threads, args.settle, keep)
    loads: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for run in range(args.runs):
        for kind in kinds if run % 2 == 0 else kinds[::-1]:  # each goes first in every other round
            loads[kind].append(one_load(kind, args.model, threads, args.settle, keep))
    result = {"model": str(args.model), "threads": threads, "runs": args.runs, "read_first": args.read_first,
              "settle_s": args.settle, "kept_repacked_weights_gb": kept_bytes(args.model) / 1e9,
              **{kind: summary(runs) for kind, runs in loads.items()}}
    if uncounted.get("ours", {}).get("repacked_weights") == "written":  # the model's first load on this machine
        result["ours"]["writing_load_s"] = uncounted["ours"]["load_s"]
        result["ours"]["written_after_s"] = uncounted["ours"]["written_s"]
    if args.json:
        print(json.dumps(result))
        return 0
    for kind in kinds:
        s = result[kind]
        cpu = (f"; CPU: user {s['user_s']:.2f} s, system {s['system_s']:.2f} s; {s['page_faults']:.0f} page faults"
               if "user_s" in s else "")
        memory = (f"; memory: private {s['private_gb']:.2f} GB, file pages {s['file_pages_gb']:.2f} GB"
                  if "private_gb" in s else "")
        repacked = f"; repacked weights: {', '.join(s['repacked_weights'])}" if "repacked_weights" in s else ""
        print(f"{kind:9} load {s['load_s']:.2f} s (runs: {', '.join(f'{x:.2f}' for x in s['load_runs_s'])}){cpu}"
              f"{memory}{repacked}")
        if "parts_s" in s:
            print("          " + ", ".join(f"{key[:-2]} {value:.2f} s" for key, value in s["parts_s"].items()))
        if "writing_load_s" in s:
            written = s["written_after_s"]
            print(f"          the load not counted repacked the weights: {s['writing_load_s']:.2f} s; their file was "
                  f"written {f'{written:.2f} s' if written is not None else 'not'} after the load started")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
