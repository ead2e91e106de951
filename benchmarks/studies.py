"""Opening and scrolling a big study: our lazy pipeline against decoding everything first.

    python benchmarks/studies.py [--slices 512] [--frames 300] [--json]

Generates a CT series (512 slices of 512x512, int16 with a rescale, files in shuffled order, no extension)
and a multi-frame file (300 frames of 512x512). Each measurement runs in a fresh process: time until the
first slice is displayable (scan the folder's headers, sort, decode and render one frame), time until the app
shows the folder's first image (`first_image_s`: the progressive scan's first result, decoded and rendered; the
rest is read meanwhile) and until that scan is complete and sorted (`scan_complete_s`), the time of each
slice change while scrolling through the whole series (decode + render, median and 95th percentile; the
viewer also prefetches neighbours in the background, not counted here), and peak RSS — beside the naive
way (read every file with its pixels first).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(folder: Path, slices: int, frames: int, size: int = 512) -> tuple[Path, Path]:
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    base.Rows = base.Columns = size
    for tag in ("WindowCenter", "WindowWidth"):
        if tag in base:
            delattr(base, tag)
    series = folder / "series"
    series.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    body = ((x - size / 2) ** 2 + (y - size / 2) ** 2 < (size * 0.4) ** 2) * 1040
    uid = generate_uid()
    order = list(range(slices))
    random.Random(0).shuffle(order)
    for n, i in enumerate(order):
        ds = base.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient, ds.InstanceNumber = [0.0, 0.0, float(i)], i + 1
        ds.PixelData = (body + rng.integers(-20, 20, (size, size))).astype(np.int16).tobytes()
        ds.save_as(series / f"IM{n:05d}", enforce_file_format=True)
    multi = base.copy()
    multi.NumberOfFrames = frames
    multi.SOPInstanceUID = generate_uid()
    frame = (body + rng.integers(-20, 20, (size, size))).astype(np.int16)
    multi.PixelData = np.repeat(frame[None], frames, axis=0).tobytes()
    multi_path = folder / "multiframe.dcm"
    multi.save_as(multi_path, enforce_file_format=True)
    return series, multi_path


def ours(series: Path, multi: Path, cache_mb: int) -> dict:
    from app.studies.frames import FrameCache
    from app.studies.scan import scan, scan_progressively
    from app.studies.view import FrameRenderer

    start = time.perf_counter()
    library = scan([series])
    (found,) = list(library.all_series())
    frames = found.frames
    renderer = FrameRenderer(FrameCache(cache_mb * 1024 * 1024))
    renderer.pixels(frames[0][0].path, frames[0][1])
    first = time.perf_counter() - start
    steps = []
    for instance, index in frames[1:]:
        t = time.perf_counter()
        renderer.pixels(instance.path, index)
        steps.append(time.perf_counter() - t)
    start = time.perf_counter()
    renderer.pixels(multi, 0)
    multi_first = time.perf_counter() - start
    multi_steps = []
    for index in range(1, int(renderer.header(multi).NumberOfFrames)):
        t = time.perf_counter()
        renderer.pixels(multi, index)
        multi_steps.append(time.perf_counter() - t)
    # What the app does now: the first image read is shown while the others are read.
    start = time.perf_counter()
    stages = scan_progressively([series])
    part = next(stages)
    instance, index = next(s for s in part.library.all_series() if s.is_image).frames[0]
    FrameRenderer(FrameCache(cache_mb * 1024 * 1024)).pixels(instance.path, index)
    first_image = time.perf_counter() - start
    updates = 1
    while True:
        try:
            next(stages)
            updates += 1
        except StopIteration as end:
            complete = time.perf_counter() - start
            assert len(next(end.value.all_series()).frames) == len(frames)
            break
    return {"first_slice_s": first, "steps": steps, "multi_first_s": multi_first, "multi_steps": multi_steps,
            "first_image_s": first_image, "scan_complete_s": complete, "scan_updates": updates}


def naive(series: Path, multi: Path, cache_mb: int) -> dict:
    import pydicom

    from app.studies.pixels import render

    start = time.perf_counter()
    datasets = [pydicom.dcmread(p) for p in sorted(series.iterdir())]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    volume = [d.pixel_array for d in datasets]
    render(volume[0], datasets[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    ds = pydicom.dcmread(multi)
    all_frames = ds.pixel_array
    render(all_frames[0], ds)
    return {"first_slice_s": first, "multi_first_s": time.perf_counter() - start}


def worker(mode: str, series: str, multi: str, cache_mb: str) -> None:
    result = (ours if mode == "ours" else naive)(Path(series), Path(multi), int(cache_mb))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run(mode: str, series: Path, multi: Path, cache_mb: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, str(series), str(multi), str(cache_mb)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=512)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cache-mb", type=int, default=128, help="frame cache size (the viewer's default is 512)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    with tempfile.TemporaryDirectory(prefix="huatuo-studies-") as tmp:
        print(f"generating {args.slices} slices and a {args.frames}-frame file …", file=sys.stderr)
        series, multi = generate(Path(tmp), args.slices, args.frames)
        size_mb = sum(p.stat().st_size for p in series.iterdir()) / 1e6
        ours_result = _run("ours", series, multi, args.cache_mb)
        naive_result = _run("naive", series, multi, args.cache_mb)
    ms = [s * 1000 for s in ours_result["steps"]]
    multi_ms = [s * 1000 for s in ours_result["multi_steps"]]
    result = {
        "slices": args.slices, "series_mb": round(size_mb, 1), "cache_mb": args.cache_mb,
        "first_slice_s": ours_result["first_slice_s"],
        "first_image_s": ours_result["first_image_s"], "scan_complete_s": ours_result["scan_complete_s"],
        "scan_updates": ours_result["scan_updates"],
        "scroll_ms_median": statistics.median(ms), "scroll_ms_p95": _p95(ms),
        "peak_rss_mb": ours_result["peak_rss_mb"],
        "multiframe_first_s": ours_result["multi_first_s"],
        "multiframe_scroll_ms_median": statistics.median(multi_ms), "multiframe_scroll_ms_p95": _p95(multi_ms),
        "naive_first_slice_s": naive_result["first_slice_s"],
        "naive_multiframe_first_s": naive_result["multi_first_s"],
        "naive_peak_rss_mb": naive_result["peak_rss_mb"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"series: {args.slices} slices, {result['series_mb']:.0f} MB; multi-frame: {args.frames} frames; "
              f"frame cache {args.cache_mb} MB")
        print(f"{'':34}{'ours':>10}{'naive':>10}")
        print(f"{'first slice displayable (s)':34}{result['first_slice_s']:10.3f}{result['naive_first_slice_s']:10.3f}")
        print(f"{'first image on screen (s)':34}{result['first_image_s']:10.3f}")
        print(f"{'scan complete, sorted (s)':34}{result['scan_complete_s']:10.3f}")
        print(f"{'multi-frame first frame (s)':34}{result['multiframe_first_s']:10.3f}"
              f"{result['naive_multiframe_first_s']:10.3f}")
        print(f"{'scroll, per slice (ms) median/p95':34}{result['scroll_ms_median']:6.1f}/"
              f"{result['scroll_ms_p95']:.1f}")
        print(f"{'scroll, per frame (ms) median/p95':34}{result['multiframe_scroll_ms_median']:6.1f}/"
              f"{result['multiframe_scroll_ms_p95']:.1f}")
        print(f"{'peak RSS (MB)':34}{result['peak_rss_mb']:10.0f}{result['naive_peak_rss_mb']:10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
