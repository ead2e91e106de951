"""`huatuo --selftest [--model DIR] [--json]`: does this installation work?

Meant for an installed (frozen) app, where a missing native library, Qt plugin or decoder plugin shows up
only at run time: it decodes one sample of every supported transfer syntax with every decoder plugin that
should be there (pydicom finds pylibjpeg's through package metadata), loads llama.cpp in a child process
(a crash or an illegal instruction there cannot take the check down), opens the main window offscreen
with an image, exports a PDF, checks that the user's data folder and the files the app creates are open to
their owner only, and with --model answers one question. It prints one line per check and exits 0 when all
passed, 1 otherwise. It works in a temporary data folder: the user's conversations, settings and models are
never changed (their permissions are only read).

`huatuo --startup-probe` opens the main window on the normal display and prints the seconds from process
start until the window is on screen.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# (label, sample in pydicom's own test files, reference it must equal, the decoder plugins that must read it,
#  largest mean absolute difference allowed to the reference: 0 for lossless)
DECODE_SAMPLES: list[tuple[str, str, str | None, tuple[str, ...], float]] = [
    ("Explicit VR Little Endian", "MR_small.dcm", None, (), 0.0),
    ("Implicit VR Little Endian", "MR_small_implicit.dcm", "MR_small.dcm", (), 0.0),
    ("Explicit VR Big Endian", "MR_small_bigendian.dcm", "MR_small.dcm", (), 0.0),
    ("Deflated Explicit VR Little Endian", "image_dfl.dcm", None, (), 0.0),
    ("RLE Lossless", "MR_small_RLE.dcm", "MR_small.dcm", ("pydicom", "pylibjpeg"), 0.0),
    ("JPEG-LS Lossless", "MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", ("gdcm", "pyjpegls"), 0.0),
    ("JPEG 2000 Lossless", "MR_small_jp2klossless.dcm", "MR_small.dcm", ("gdcm", "pylibjpeg", "pillow"), 0.0),
    ("JPEG 2000", "JPEG2000.dcm", None, ("gdcm", "pylibjpeg", "pillow"), 0.0),
    ("JPEG Lossless (Process 14 SV1)", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm", ("gdcm",), 0.0),
    ("JPEG Baseline (Process 1)", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", ("gdcm", "pillow"), 2.0),
]
# 12-bit JPEG Extended is read only by a GPL decoder the app does not ship: it must be reported by name.
UNSUPPORTED_SAMPLE = ("JPEG Extended 12-bit", "JPEG-lossy.dcm")
# Every sample file the self-test reads (the frozen app bundles exactly these).
SAMPLE_FILES = sorted({n for _, name, ref, _, _ in DECODE_SAMPLES for n in (name, ref) if n}
                      | {UNSUPPORTED_SAMPLE[1], "CT_small.dcm"})
# What a frozen app must not contain: the training stack.
NOT_IN_RUNTIME = ("torch", "transformers", "datasets")
NATIVE_TIMEOUT_S = 120
WINDOWS_ILLEGAL_INSTRUCTION = 0xC000001D  # the exit status of a process killed by STATUS_ILLEGAL_INSTRUCTION


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def run(self, name: str, check: Callable[[], str], out=None) -> bool:
        """Run one check (it returns a detail line or raises) and print its line at once."""
        start = time.perf_counter()
        try:
            ok, detail = True, check()
        except Exception as exc:  # a self-test reports every failure and goes on
            ok, detail = False, f"{type(exc).__name__}: {exc}"
            if os.environ.get("HUATUO_SELFTEST_TRACEBACK"):
                detail += "\n" + traceback.format_exc()
        self.checks.append(Check(name, ok, detail, round(time.perf_counter() - start, 3)))
        if out is not None:
            print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}", file=out, flush=True)
        return ok


# --- checks --------------------------------------------------------------------------------------
def sample_path(name: str) -> str:
    """A file of pydicom's own test data (it ships in the pydicom wheel; never downloaded)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    return str(path)


def check_decoders() -> str:
    """Each sample through the app's own decoder, then through each plugin that must read it."""
    lines, problems = [], []
    with warnings.catch_warnings():  # pydicom warns about oddities its own test files carry on purpose
        warnings.simplefilter("ignore", UserWarning)
        for sample in DECODE_SAMPLES:
            lines.append(_decode_sample(*sample, problems))
    if problems:
        raise RuntimeError("; ".join(problems))
    return f"{len(DECODE_SAMPLES)} transfer syntaxes decoded: " + "; ".join(lines)


def _decode_sample(label: str, name: str, reference: str | None, plugins: tuple[str, ...], tolerance: float,
                   problems: list[str]) -> str:
    """Decode one sample every way it must decode; append what went wrong to problems; return a summary."""
    from pydicom.pixels import get_decoder, pixel_array
    from pydicom.uid import UID

    from app.studies.frames import decode_frame, read_header

    path = sample_path(name)
    header = read_header(Path(path))
    syntax = UID(header.file_meta.TransferSyntaxUID)
    decoded = {"app": decode_frame(Path(path), 0, header)}
    decoder = get_decoder(syntax) if syntax.is_compressed else None
    available = set(decoder.available_plugins) if decoder is not None else set()
    for plugin in plugins:
        if plugin not in available:
            problems.append(f"{label}: decoder plugin {plugin!r} is missing (have: {sorted(available) or 'none'})")
            continue
        decoded[plugin] = pixel_array(path, index=0, decoding_plugin=plugin)
    expected = decode_frame(Path(sample_path(reference)), 0) if reference else decoded["app"]
    for source, array in decoded.items():
        if array.shape != expected.shape:
            problems.append(f"{label} via {source}: shape {array.shape}, expected {expected.shape}")
            continue
        diff = float(np.abs(array.astype(np.float64) - expected.astype(np.float64)).mean())
        if diff > tolerance:
            problems.append(f"{label} via {source}: differs from the reference (mean |diff| {diff:.2f})")
    return f"{label} [{', '.join(sorted(decoded))}]"


def check_unsupported_reported() -> str:
    from app.studies.frames import PixelDecodeError, decode_frame

    label, name = UNSUPPORTED_SAMPLE
    try:
        decode_frame(Path(sample_path(name)), 0)
    except PixelDecodeError as exc:
        if "JPEG Extended" not in str(exc):
            raise RuntimeError(f"{label}: unclear message: {exc}") from None
        return f"{label} is reported by name ({exc})"
    raise RuntimeError(f"{label} decoded: a decoder outside the permissive set is installed")


def check_processor() -> str:
    from app.cpu_check import unsupported_cpu_message

    if message := unsupported_cpu_message():
        raise RuntimeError(message)
    return "has what the llama.cpp build needs"


def check_runtime_only() -> str:
    """The frozen app carries the runtime only (from source the dev extras are installed on purpose)."""
    import importlib.util

    if not getattr(sys, "frozen", False):
        return "not a frozen app: skipped"
    present = [name for name in NOT_IN_RUNTIME if importlib.util.find_spec(name) is not None]
    if present:
        raise RuntimeError(f"the installed app contains {', '.join(present)}")
    return f"no {', '.join(NOT_IN_RUNTIME)}"


def check_resources() -> str:
    """The packaged data, read by the app's own loaders: the model catalogue, suggested questions, the sample deck."""
    from importlib import resources

    from app.practice import image_png, load_deck, sample_deck_path
    from inference.store.catalogue import load_catalogue

    catalogue = load_catalogue()
    questions = json.loads(resources.files("resources").joinpath("suggested_questions.json").read_text("utf-8"))
    deck = load_deck(sample_deck_path())
    images = {image for item in deck.items for image in item.images}
    for image in images:
        image_png(image)
    return (f"{len(catalogue)} catalogue entries, {len(questions)} suggested-question sets, "
            f"sample deck of {len(deck.items)} items with {len(images)} images")


def _native_probe(conn) -> None:
    """In a child process: load llama.cpp (and mtmd) and report what was loaded."""
    import llama_cpp
    from llama_cpp import mtmd_cpp

    from inference.native import patched_build_problem

    conn.send({
        "version": llama_cpp.__version__,
        "problem": patched_build_problem(),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "mtmd_marker": mtmd_cpp.mtmd_default_marker().decode(),
        "library": str(Path(llama_cpp.__file__).parent / "lib"),
    })
    conn.close()


def check_native() -> str:
    from app.cpu_check import unsupported_cpu_message

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_native_probe, args=(child,), name="huatuo-selftest-native", daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(NATIVE_TIMEOUT_S):
            raise RuntimeError(_child_failure(process))
        info = parent.recv()
    except EOFError:
        raise RuntimeError(_child_failure(process)) from None
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    if info["problem"]:
        raise RuntimeError(info["problem"])
    message = unsupported_cpu_message()
    note = f"; note: {message}" if message else ""
    return (f"llama-cpp-python {info['version']} from {info['library']}, GPU offload {info['gpu_offload']}; "
            f"{info['system_info']}{note}")


def _child_failure(process) -> str:
    """Why the llama.cpp child gave no answer, in words."""
    process.join(5)
    code = process.exitcode
    if code is None:
        return f"llama.cpp did not load within {NATIVE_TIMEOUT_S} s"
    if code in (-signal.SIGILL, WINDOWS_ILLEGAL_INSTRUCTION):
        from app.cpu_check import unsupported_cpu_message

        return f"llama.cpp died of an illegal instruction: {unsupported_cpu_message() or 'unsupported CPU'}"
    if code < 0:
        return f"llama.cpp's process died ({signal.Signals(-code).name})"
    return f"llama.cpp's process exited with code {code}"


def check_window() -> str:
    """The main window, offscreen, showing a DICOM study; a PDF export through Qt's own writer."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QImageReader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.settings import Settings
    from app.ui.main import MainWindow

    window = MainWindow(Settings.load())
    window.show()
    _wait(app, window.windowHandle().isExposed, 10, "the window was not shown")
    window.open_path(sample_path("CT_small.dcm"))
    _wait(app, lambda: window.current_series is not None and window.series_viewer.shown is not None, 30,
          "the CT slice did not open")
    shown = window.series_viewer.shown
    pdf = _export_pdf(window)
    window.close()
    folders = [Path(f) / "platforms" for f in app.libraryPaths()]  # where Qt looks for plugins, in the bundle too
    platforms = sorted({p.name.split(".")[0].removeprefix("libq").removeprefix("q")
                        for folder in folders if folder.is_dir() for p in folder.iterdir()})
    needed = {"linux": ["offscreen", "xcb"], "darwin": ["cocoa"], "win32": ["windows"]}
    missing = [p for p in needed.get(sys.platform, []) if p not in platforms]
    if missing:
        raise RuntimeError(f"Qt platform plugins missing: {', '.join(missing)} (have {platforms})")
    formats = sorted(bytes(f).decode() for f in QImageReader.supportedImageFormats())
    for fmt in ("png", "jpeg"):
        if fmt not in formats:
            raise RuntimeError(f"Qt cannot read {fmt} images (image formats: {formats})")
    return (f"platform {app.platformName()}, CT slice shown ({shown.shape[1]}×{shown.shape[0]}), "
            f"PDF export {pdf} bytes; platform plugins {', '.join(platforms)}; image formats {len(formats)}")


def check_data_folder_private(user_folder: Path, run_folder: Path) -> str:
    """The user's data folder and everything in it are open to the user only, and so is every file this run made
    through the app's own code (a database with its -wal/-shm, settings, a PDF): the umask is in effect."""
    from app.privacy import exposures

    problems = []
    if user_folder.exists():
        found, checked = exposures(user_folder)
        problems += [f"{_under(e.path, user_folder)} {e.problem}" for e in found]
        summary = f"{user_folder}: {checked} paths, owner only"
    else:
        summary = f"{user_folder} not created yet (the app creates it owner-only)"
    made, made_checked = exposures(run_folder)
    problems += [f"a new file, {_under(e.path, run_folder)}, {e.problem}" for e in made]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        fix = "" if os.name == "nt" else " (the app narrows its data folder when it next starts)"
        raise RuntimeError(f"other users can reach {len(problems)} path(s): {shown}{fix}")
    return f"{summary}; the {made_checked} paths this run created: owner only"


def _under(path: Path, folder: Path) -> str:
    return f"{folder} itself" if path == folder else str(path.relative_to(folder))


def _export_pdf(window) -> int:
    from PIL import Image

    from app.export import export_conversation

    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(buffer, format="PNG")
    store = window.store
    cid = store.create_conversation("self-test", store.study_key("selftest"), {}, {}, {})
    turn = store.add_turn(cid, "What is shown?", [store.add_image(cid, buffer.getvalue(), "grey square")])
    store.finish_answer(turn, "stop", [], {}, text="A grey square.")
    with tempfile.TemporaryDirectory(prefix="huatuo-selftest-export-") as folder:  # an export goes where the
        path = Path(folder) / "selftest.pdf"  # user chooses, never into the data folder
        export_conversation(store.load(cid), path, "pdf")
        data = path.read_bytes()
    if not data.startswith(b"%PDF"):
        raise RuntimeError("the PDF export is not a PDF")
    return len(data)


def _wait(app, condition: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{message} within {timeout_s} s")
        app.processEvents()
        time.sleep(0.01)


def _since_process_start() -> float:
    import psutil

    return time.time() - psutil.Process().create_time()


def check_model(model_dir: Path, report: Report) -> str:
    from PIL import Image

    from app.studies.frames import decode_frame, read_header
    from app.studies.pixels import render
    from inference.engine import Engine
    from inference.prompt import Turn
    from inference.sampling import SamplingSettings

    path = Path(sample_path("CT_small.dcm"))
    buffer = io.BytesIO()
    Image.fromarray(render(decode_frame(path, 0), read_header(path))).save(buffer, format="PNG")
    with Engine.from_folder(model_dir) as engine:
        image = engine.prepare_image(buffer.getvalue())
        answer = engine.ask([Turn("Describe the image.", n_images=1)], [image], SamplingSettings.greedy_decoding(16))
    if answer.finish not in ("stop", "length") or not answer.token_ids:
        raise RuntimeError(f"no answer (finish {answer.finish!r}, {len(answer.token_ids)} tokens)")
    ttft = answer.timings.get("ttft_s")
    if ttft is not None:
        report.figures["model_ttft_s"] = round(float(ttft), 3)
    text = " ".join(answer.text.split())
    return f"{len(answer.token_ids)} tokens ({answer.finish}): {text[:60]!r}"


# --- entry points --------------------------------------------------------------------------------
def run_selftest(model_dir: str | Path | None = None, *, as_json: bool = False) -> int:
    """Run every check, print a line each (and with as_json one JSON object at the end); 0 if all passed."""
    out = sys.stderr if as_json else sys.stdout
    report = Report()
    from app.paths import data_dir

    user_data = data_dir()  # checked, never changed
    with tempfile.TemporaryDirectory(prefix="huatuo-selftest-") as data:
        previous = os.environ.get("HUATUO_DATA_DIR")
        os.environ["HUATUO_DATA_DIR"] = data  # never the user's conversations, settings or models
        try:
            report.run("processor", check_processor, out)
            report.run("runtime only", check_runtime_only, out)
            report.run("resources", check_resources, out)
            report.run("decoders", check_decoders, out)
            report.run("unsupported syntax", check_unsupported_reported, out)
            report.run("llama.cpp", check_native, out)
            report.run("main window", check_window, out)
            report.run("data folder private", lambda: check_data_folder_private(user_data, Path(data)), out)
            if model_dir is not None:
                report.run("answer", lambda: check_model(Path(model_dir), report), out)
        finally:
            if previous is None:
                os.environ.pop("HUATUO_DATA_DIR", None)
            else:
                os.environ["HUATUO_DATA_DIR"] = previous
    report.figures["total_s"] = round(_since_process_start(), 3)
    print(f"self-test {'passed' if report.passed else 'FAILED'} "
          f"({sum(c.ok for c in report.checks)}/{len(report.checks)} checks, {report.figures['total_s']:.1f} s "
          f"since start)", file=out, flush=True)
    if as_json:
        print(json.dumps({"passed": report.passed, "frozen": bool(getattr(sys, "frozen", False)),
                          "checks": [asdict(c) for c in report.checks], "figures": report.figures}), flush=True)
    return 0 if report.passed else 1


def startup_probe() -> int:
    """Seconds from process start until the main window is on screen (the user's data folder is not used)."""
    from PySide6.QtWidgets import QApplication

    with tempfile.TemporaryDirectory(prefix="huatuo-probe-") as data:
        os.environ["HUATUO_DATA_DIR"] = data
        app = QApplication.instance() or QApplication(sys.argv[:1])
        from app.settings import Settings
        from app.ui.main import MainWindow

        window = MainWindow(Settings.load())
        window.show()
        _wait(app, window.windowHandle().isExposed, 30, "the window was not shown")
        seconds = _since_process_start()
        window.close()
    print(f"window shown {seconds:.3f} s after process start (platform {app.platformName()})", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="huatuo", description="check this installation of Huatuo Vision")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--selftest", action="store_true", help="run the installation self-test")
    mode.add_argument("--startup-probe", action="store_true", help="time the start until the window is shown")
    parser.add_argument("--model", help="also answer one question with this model folder")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object too")
    args = parser.parse_args(argv)
    from app.privacy import restrict_new_files

    restrict_new_files()  # as the app does: what the checks create is the user's only
    if args.startup_probe:
        return startup_probe()
    return run_selftest(args.model, as_json=args.json)
