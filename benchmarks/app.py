"""The desktop app's responsiveness: time from launch to an interactive window, and the GUI event loop's
latency while an answer streams in.

    python benchmarks/app.py [--model DIR] [--json]

Each figure comes from a fresh process started by this script. Startup: from starting the interpreter to the
first turn of the event loop after the main window is shown (imports, settings, store and window included).
Latency: a 5 ms timer runs on the GUI thread from the question to the end of the answer (image encoding,
prompt, streaming; greedy, up to the official answer length) and every delay beyond its interval is
recorded; max and 95th percentile are reported. Targets: startup ≤ 2 s,
latency max and p95 ≤ 50 ms. Without --model a tiny random model is built (needs the dev extras).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and its name would hide the `app` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

CHILD = r"""
import json, sys, time
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication
from app.settings import Settings
from app.ui.main import MainWindow

app = QApplication([])
window = MainWindow(Settings.load())
window.show()
mode = sys.argv[1]

def ready():
    print("READY", flush=True)
    if mode == "startup":
        window.close()
        app.quit()
    else:
        stream()

def stream():
    from PIL import Image
    import io, numpy as np
    pixels = np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    window.chat.add_attachment(buffer.getvalue(), "random")
    window.chat.input.setPlainText("Describe this image in detail.")
    delays, clock, pieces = [], QElapsedTimer(), []
    timer = QTimer(interval=5)
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick():  # from the question to the end of the answer: encoding, reading and streaming
        now = clock.nsecsElapsed()
        delays.append(max(0.0, (now - last[0]) / 1e6 - 5.0))
        last[0] = now

    def done(answer):
        timer.stop()
        print(json.dumps({"delays_ms": delays, "pieces": len(pieces), "finish": answer.finish,
                          "decode_tok_s": answer.timings.get("tokens_per_s")}), flush=True)
        window.close()
        app.quit()

    timer.timeout.connect(tick)
    timer.start()
    window.chat.send()
    request = window.chat.request  # its signals reach the GUI through the event loop: none is missed
    request.text.connect(pieces.append)
    request.finished.connect(done)
    request.failed.connect(lambda kind, message: (print(json.dumps({"error": message}), flush=True), app.quit()))

QTimer.singleShot(0, ready)
app.exec()
"""


def run_child(mode: str, data_dir: Path) -> tuple[float, list[str]]:
    env = dict(os.environ, HUATUO_DATA_DIR=str(data_dir), QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM",
                                                                                       "offscreen"))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             text=True)
    ready_s, lines = None, []
    for line in child.stdout:
        if line.startswith("READY") and ready_s is None:
            ready_s = time.perf_counter() - start
        else:
            lines.append(line)
    child.wait(timeout=600)
    if ready_s is None:
        raise SystemExit(f"the app did not come up (exit code {child.returncode})")
    return ready_s, lines


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a converted model folder (default: a tiny random model)")
    parser.add_argument("--runs", type=int, default=5, help="startup runs (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from app.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        if args.model is None:
            from tests.support.checkpoints import tiny_model
        model = args.model or tiny_model(work)
        shutil.copytree(model, data / "models" / model.name)
        Settings(greedy=True, acknowledged="benchmark").save(data)
        run_child("startup", data)  # warm the file cache: the figure is a warm start
        startups = [run_child("startup", data)[0] for _ in range(args.runs)]
        _, lines = run_child("stream", data)
    result = json.loads(lines[-1])
    if "error" in result:
        raise SystemExit(f"the answer failed: {result['error']}")
    delays = result["delays_ms"]
    report = {
        "startup_s": round(statistics.median(startups), 3),
        "startup_runs_s": [round(s, 3) for s in startups],
        "latency_ms_max": round(max(delays), 2),
        "latency_ms_p95": round(percentile(delays, 95), 2),
        "latency_samples": len(delays),
        "streamed_pieces": result["pieces"],
        "decode_tok_s": result["decode_tok_s"],
        "model": str(args.model or "tiny random (built)"),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"launch to interactive window   {report['startup_s']:.2f} s (median of {args.runs}; target <= 2 s)")
        print(f"event-loop latency while answering   max {report['latency_ms_max']:.1f} ms, "
              f"p95 {report['latency_ms_p95']:.1f} ms over {len(delays)} ticks (target <= 50 ms)")
        print(f"answer: {result['pieces']} pieces at {result['decode_tok_s'] or 0:.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
