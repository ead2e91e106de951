"""Installed models: converted folders (text GGUF + mmproj GGUF + manifest.json) under the models folder.

Also importing a GGUF pair picked by the user, deleting a model, which model is the default (the one in use), and
the last `huatuo verify` result of a model (verify.json).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import gguf

from inference.cancellation import Cancelled
from inference.store.manifest import MANIFEST_NAME, Manifest, ModelFile

from ..hardware import Fit, assess
from ..repacked_weights import remove_kept
from ..sizes import size_text
from .gguf_check import HeaderReader, ModelFileError, check_mmproj, check_pair
from .verified import file_identity, forget_verified, record_verified

DEFAULT_MODEL_FILE = "default-model.json"
VERIFICATION_NAME = "verify.json"  # written by conversion.verify next to manifest.json
VERIFICATION_FORMAT = 1
_CHUNK = 8 * 1024 * 1024

# progress(done_bytes, total_bytes)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InstalledModel:
    folder: Path
    manifest: Manifest
    problem: str = ""  # why its files cannot be used ("" when they look whole)

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def size_bytes(self) -> int:
        return self.manifest.text.size_bytes + self.manifest.mmproj.size_bytes

    @property
    def label(self) -> str:
        m = self.manifest
        return f"{m.name} · {m.text.quantization} · {size_text(self.size_bytes)}"


def installed_models(root: Path) -> tuple[list[InstalledModel], list[str]]:
    """Models found under root, and a message for each folder that looks like a model but cannot be read.

    A model whose files are missing, of another size than its manifest says, or not GGUF is listed with its
    `problem`; only hashing finds a same-size change, and that is left to loading (it takes minutes for a large
    model), where the error names the model's folder.
    """
    models, problems = [], []
    root = Path(root)
    if not root.is_dir():
        return models, problems
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}")):
        folder = manifest_path.parent
        try:
            manifest = Manifest.read(folder)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"{folder.name}: unreadable manifest ({exc})")
            continue
        models.append(InstalledModel(folder, manifest, _files_problem(folder, manifest)))
    return models, problems


def _files_problem(folder: Path, manifest: Manifest) -> str:
    """A quick look at the two files (no hashing): present, as large as the manifest says, GGUF."""
    for path, entry in zip(manifest.paths(folder), (manifest.text, manifest.mmproj), strict=True):
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                magic = f.read(4)
        except FileNotFoundError:
            return f"{entry.file} is missing"
        except OSError as exc:
            return f"{entry.file} cannot be read ({exc.strerror or exc})"
        if size != entry.size_bytes:
            return f"{entry.file} is {size:,} bytes, its manifest says {entry.size_bytes:,} (an incomplete copy?)"
        if magic != b"GGUF":
            return f"{entry.file} is not a GGUF file"
    return ""


def model_fit(model: InstalledModel, bandwidth_gb_s: float | None = None) -> Fit:
    """hardware.assess on the model's files (read, not hashed)."""
    from .catalogue import measured_bandwidth_gb_s

    pair = check_pair(*model.manifest.paths(model.folder))
    return assess(pair, bandwidth_gb_s=bandwidth_gb_s or measured_bandwidth_gb_s())


# --- the last verification ---------------------------------------------------------------------------------------

# The quality measures verify gates on, in the order to show them, with a label for people.
QUALITY_MEASURES = {
    "kld_mean": "KL divergence, mean (nats/token)",
    "kld_p99": "KL divergence, 99th percentile",
    "same_top_token": "same top token",
    "image_cosine_min": "image embedding cosine, min",
    "image_cosine_mean": "image embedding cosine, mean",
}


@dataclass(frozen=True)
class QualityRow:
    measure: str  # a key of QUALITY_MEASURES
    label: str
    value: float
    bound: str | None  # "max" (value may not exceed limit), "min" (may not fall below), None: not gated
    limit: float | None
    ok: bool


@dataclass(frozen=True)
class Verification:
    passed: bool
    verified_at: str  # ISO 8601, UTC
    quantization: str  # the text GGUF's type
    mmproj_quantization: str
    rows: tuple[QualityRow, ...]
    failures: tuple[str, ...]


def read_verification(model: InstalledModel) -> Verification | None:
    """The last `huatuo verify` result for the model's current files: None when it was never verified, the
    record is unreadable, or the files changed since (it names their SHA-256)."""
    try:
        data = json.loads((model.folder / VERIFICATION_NAME).read_text(encoding="utf-8"))
        if data.get("format") != VERIFICATION_FORMAT:
            return None
        if (data["text_sha256"], data["mmproj_sha256"]) != (model.manifest.text.sha256, model.manifest.mmproj.sha256):
            return None
        thresholds = data.get("thresholds", {})
        rows = []
        for measure, label in QUALITY_MEASURES.items():
            value = float(data[measure])
            bound, limit = next(iter(thresholds.get(measure, {}).items()), (None, None))  # {"max": 0.2}
            ok = limit is None or (value <= limit if bound == "max" else value >= limit)
            rows.append(QualityRow(measure, label, value, bound, None if limit is None else float(limit), ok))
        return Verification(bool(data["passed"]), str(data.get("verified_at", "")), str(data["quantization"]),
                            str(data["mmproj_quantization"]), tuple(rows), tuple(map(str, data.get("failures", []))))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


# --- the default model -------------------------------------------------------------------------------------------
# The default model is the one questions go to. Only the user changes it (Set default), with one exception: while
# no default is recorded (nothing was installed before, or the default was deleted in the model manager), the
# earliest-installed usable model becomes the default and is recorded at once. A model added later, by any route,
# then never takes its place, and a first install needs no extra step. A broken model is never chosen, and a
# recorded default that is broken or gone is not replaced behind the user's back: nothing is in use until they
# choose.

def _recorded_default(root: Path) -> str | None:
    try:
        return str(json.loads((Path(root) / DEFAULT_MODEL_FILE).read_text(encoding="utf-8"))["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_model(root: Path) -> Path | None:
    """The folder of the default model, or None when none is set or it is no longer installed."""
    name = _recorded_default(root)
    if name is None:
        return None
    folder = Path(root) / name
    return folder if (folder / MANIFEST_NAME).is_file() else None


def active_model(root: Path, models: list[InstalledModel]) -> tuple[InstalledModel | None, str]:
    """The model in use among `models` (as installed_models lists them), and, when none is, why ("" when simply
    none is installed). Records the first default as described above."""
    name = _recorded_default(root)
    if name is not None:
        model = next((m for m in models if m.folder.name == name), None)
        if model is None:
            return None, f"the default model ({name}) is no longer installed."
        if not model.usable:
            return None, f"the default model ({name}) cannot be used: {model.problem}."
        return model, ""
    usable = [m for m in models if m.usable]
    if not usable:
        return None, "no installed model can be used." if models else ""
    first = min(usable, key=_installed_order)
    set_default_model(root, first.folder)
    return first, ""


def _installed_order(model: InstalledModel) -> tuple[str, int, str]:
    """Earliest installed first: the manifest's date (to the second; undated last), then when it was written."""
    try:
        written = (model.folder / MANIFEST_NAME).stat().st_mtime_ns
    except OSError:
        written = 0
    return model.manifest.created or "~", written, model.folder.name


def set_default_model(root: Path, folder: Path | None) -> None:
    """Remember folder (a usable model directly under root) as the default; None forgets the setting."""
    path = Path(root) / DEFAULT_MODEL_FILE
    if folder is None:
        path.unlink(missing_ok=True)
        return
    folder = Path(folder)
    if folder.parent.resolve() != Path(root).resolve() or not (folder / MANIFEST_NAME).is_file():
        raise ModelFileError(f"{folder} is not an installed model in {root}")
    problem = _files_problem(folder, Manifest.read(folder))
    if problem:
        raise ModelFileError(f"model {folder.name} cannot be used: {problem}")
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps({"folder": folder.name}), encoding="utf-8")
    os.replace(partial, path)


# --- delete ------------------------------------------------------------------------------------------------------

def delete_model(model: InstalledModel) -> None:
    """Remove the model's files; anything else a user put in its folder stays (and so does the folder then)."""
    root = model.folder.parent
    was_default = default_model(root) == model.folder
    # The manifest goes first: from then on the folder is no longer an installed model, whatever fails later.
    (model.folder / MANIFEST_NAME).unlink(missing_ok=True)
    for path in (*model.manifest.paths(model.folder), model.folder / VERIFICATION_NAME):
        path.unlink(missing_ok=True)
    forget_verified(model.folder)
    remove_kept(model.folder)
    for path in model.folder.glob("*.part"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        model.folder.rmdir()
    if was_default:
        set_default_model(root, None)


# --- import a GGUF pair -------------------------------------------------------------------------------------------

def folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def import_pair(
    text_gguf: str | Path,
    mmproj_gguf: str | Path,
    models_root: str | Path,
    name: str | None = None,
    copy: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> InstalledModel:
    """Validate the pair, copy (or hard-link) it into a new folder under models_root and write its manifest.

    A cancelled or failed import leaves nothing behind; the source files are never changed.
    """
    text, mmproj = Path(text_gguf), Path(mmproj_gguf)
    check_pair(text, mmproj)  # before copying gigabytes: a wrong pick is reported at once
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    total = text.stat().st_size + mmproj.stat().st_size
    if copy:
        _check_free_space(root, total)
    name = name or text.stem
    folder = _new_folder(root, folder_name(name))
    report = progress or (lambda done, total: None)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        report(done, total)

    try:
        hashes = []
        targets = (folder / text.name, folder / (mmproj.name if mmproj.name != text.name else f"mmproj-{mmproj.name}"))
        for src, dst in zip((text, mmproj), targets, strict=True):
            if not copy:
                try:
                    os.link(src, dst)
                except OSError:  # another volume, or a file system without hard links: copy instead
                    _check_free_space(root, total)
                else:
                    hashes.append(_hash_file(dst, on_bytes, cancel))
                    continue
            hashes.append(_copy_hashing(src, dst, on_bytes, cancel))
        manifest = write_pair_manifest(
            folder, *targets, name=name, hashes=(hashes[0], hashes[1]),
            source={"imported_from": {"text": str(text), "mmproj": str(mmproj)}, "hard_linked": not copy},
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return InstalledModel(folder, manifest)


def write_pair_manifest(
    folder: Path,
    text_path: Path,
    mmproj_path: Path,
    *,
    name: str,
    source: dict,
    hashes: tuple[str, str] | None = None,
    quantizations: tuple[str, str] | None = None,
) -> Manifest:
    """Validate a pair lying in folder and describe it in folder/manifest.json, which makes it an installed model.
    `hashes` are those of the files as they lie now (computed while they were written); the files are recorded as
    verified, so that loading them does not hash them again."""
    folder = Path(folder)
    identities = (file_identity(text_path), file_identity(mmproj_path))
    pair = check_pair(text_path, mmproj_path)
    layers_used = check_mmproj(mmproj_path)["block_count"]  # conversion writes only the layers the model uses
    hashes = hashes or (_hash_file(text_path), _hash_file(mmproj_path))
    quantizations = quantizations or (gguf_quantization(text_path), gguf_quantization(mmproj_path))
    manifest = Manifest(
        name=name,
        text_architecture=pair.architecture,
        text=ModelFile(text_path.name, quantizations[0], pair.text_bytes, hashes[0]),
        mmproj=ModelFile(mmproj_path.name, quantizations[1], pair.mmproj_bytes, hashes[1]),
        context_length=pair.context_length,
        hidden_size=pair.hidden_size,
        image_size=pair.image_size,
        image_tokens=pair.image_tokens,
        vision_layers_used=layers_used,
        source=source,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    manifest.write(folder)
    for path, entry, identity in zip((text_path, mmproj_path), (manifest.text, manifest.mmproj), identities,
                                     strict=True):
        if file_identity(path) == identity:  # unchanged since before it was hashed
            record_verified(folder, path, entry.sha256, identity)
    return manifest


def gguf_quantization(path: Path) -> str:
    """The file's type as llama.cpp names it (Q4_K_M, F16, ...), from general.file_type."""
    field = HeaderReader.read(path).fields.get("general.file_type")
    if field is None:
        return "unknown"
    try:
        kind = gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name
    except ValueError:
        return "unknown"
    return "F32" if kind == "ALL_F32" else kind.removeprefix("MOSTLY_")


def _new_folder(root: Path, name: str) -> Path:
    for n in range(1, 1000):
        folder = root / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise ModelFileError(f"{root}: too many folders named {name}")


def _check_free_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if free < needed:
        raise ModelFileError(f"not enough disk space in {root}: the model needs {size_text(needed)}, "
                             f"{size_text(free)} are free")


def _copy_hashing(src: Path, dst: Path, on_bytes: Callable[[int], None], cancel: threading.Event | None) -> str:
    """Copy src to dst through dst.part (renamed only when whole), returning the SHA-256 of what was written."""
    digest = hashlib.sha256()
    partial = dst.with_name(dst.name + ".part")
    try:
        with open(src, "rb") as fin, open(partial, "wb") as fout:
            while block := fin.read(_CHUNK):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("import cancelled")
                fout.write(block)
                digest.update(block)
                on_bytes(len(block))
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()


def _hash_file(path: Path, on_bytes: Callable[[int], None] | None = None,
               cancel: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while computing checksums")
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()
