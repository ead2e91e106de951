"""The long model jobs behind the model manager, free of Qt: install a catalogue entry (download a GGUF pair, or
download a checkpoint and convert it here), convert a checkpoint folder, import a GGUF pair.

Each job runs in the calling thread (the model manager calls it from a worker thread), reports
``report(stage, done, total)`` (total 0: no measure of how far it is) and stops with ``Cancelled`` soon after
``cancel`` is set, leaving nothing under a final name.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from conversion.convert import convert
from inference.store.catalogue import CatalogueEntry
from inference.store.downloads import download_checkpoint, download_pair
from inference.store.gguf_check import ModelFileError
from inference.store.manifest import MANIFEST_NAME, Manifest
from inference.store.models import InstalledModel, folder_name, import_pair

Report = Callable[[str, int, int], None]
CHECKPOINTS = "checkpoints"  # under the models folder: downloaded checkpoints waiting to be converted


class AlreadyInstalled(ModelFileError):
    """The target folder already holds an installed model."""


def entry_folder(models_root: Path, entry: CatalogueEntry) -> Path:
    return Path(models_root) / folder_name(entry.id)


def checkpoint_folder(models_root: Path, entry: CatalogueEntry) -> Path:
    # Named as the model: conversion names its files and manifest after the checkpoint folder.
    return Path(models_root) / CHECKPOINTS / folder_name(entry.name)


def install_from_catalogue(
    entry: CatalogueEntry,
    models_root: Path,
    report: Report,
    cancel: threading.Event,
    *,
    endpoint: str | None = None,
    stall_timeout_s: float = 60,
    keep_checkpoint: bool = False,
) -> InstalledModel:
    folder = entry_folder(models_root, entry)
    _refuse_installed(folder)
    options = dict(cancel=cancel, stall_timeout_s=stall_timeout_s, endpoint=endpoint,
                   status=lambda message: report(message, 0, 0))
    if entry.kind == "gguf":
        download_pair(entry, folder, progress=lambda done, total: report(f"downloading {entry.id}", done, total),
                      **options)
        return InstalledModel(folder, Manifest.read(folder))
    checkpoint = download_checkpoint(
        entry.repo_id, checkpoint_folder(models_root, entry),
        progress=lambda done, total: report(f"downloading the {entry.name} checkpoint", done, total),
        revision=entry.revision, allow_patterns=entry.allow_patterns, **options,
    )
    model = convert_checkpoint(checkpoint, models_root, entry.quantization, report, cancel,
                               mmproj_quant=entry.mmproj_quantization, folder=folder)
    if not keep_checkpoint:
        shutil.rmtree(checkpoint, ignore_errors=True)
        report(f"installed {entry.id}; the downloaded checkpoint was removed", 0, 0)
    return model


def convert_checkpoint(
    src: str | Path,
    models_root: Path,
    quant: str,
    report: Report,
    cancel: threading.Event,
    *,
    mmproj_quant: str | None = None,
    folder: Path | None = None,
) -> InstalledModel:
    """conversion.convert into a new model folder (by default named after the checkpoint and the quantization)."""
    src = Path(src)
    out = folder or Path(models_root) / folder_name(f"{src.name}-{quant}")
    _refuse_installed(out)
    created = not out.exists()
    try:
        manifest = convert(src, out, quant, mmproj_quant, progress=report, cancel=cancel)
    except BaseException:
        if created:  # convert removes its own outputs; the folder it was given goes too
            shutil.rmtree(out, ignore_errors=True)
        raise
    return InstalledModel(out, manifest)


def import_gguf_pair(
    text_gguf: str | Path,
    mmproj_gguf: str | Path,
    models_root: Path,
    report: Report,
    cancel: threading.Event,
    *,
    name: str | None = None,
    copy: bool = True,
) -> InstalledModel:
    stage = "copying the model files" if copy else "linking and checking the model files"
    return import_pair(text_gguf, mmproj_gguf, models_root, name=name, copy=copy,
                       progress=lambda done, total: report(stage, done, total), cancel=cancel)


def _refuse_installed(folder: Path) -> None:
    if (folder / MANIFEST_NAME).is_file():
        raise AlreadyInstalled(f"{folder.name} is already installed (delete it first to install it again)")
