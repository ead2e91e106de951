"""Stage 2, image filter: every image of a record must exist, decode, measure at least min_width × min_height and,
when a classifier is configured, be accepted by it; otherwise the whole record goes (its caption speaks of all its
panels, so a record that lost one would no longer match its text).

The image is decoded here anyway, so its perceptual hash for deduplication is computed here too.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import imagehash
from PIL import Image

from training.pubmedvision import hf
from training.pubmedvision.records import AtomicJsonl, write_empty
from training.pubmedvision.stage import Context, StageError, StageReport


class ClassifierError(StageError):
    """The configured classifier cannot be imported or fails."""


@lru_cache(maxsize=4)
def load_classifier(dotted: str) -> Callable[[Image.Image], object]:
    """``package.module:function`` or ``package.module.function`` → the function (loaded once per process)."""
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ClassifierError(f"image_filter.classifier: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ClassifierError(f"image_filter.classifier: {module_name} has no function {attr!r}")
    return fn


def check_image(path: str, min_width: int, min_height: int, classifier: str | None,
                hash_size: int) -> tuple[str, str, str]:
    """(reason, detail, perceptual hash): reason is "" for a good image."""
    try:
        with Image.open(path) as im:
            width, height = im.size  # from the header: small images are rejected without decoding
            if width < min_width or height < min_height:
                return "image_too_small", f"{path}: {width}×{height} (minimum {min_width}×{min_height})", ""
            im.load()  # a truncated or corrupt file fails here, not at open
            phash = str(imagehash.phash(im, hash_size=hash_size))
            rgb = im.convert("RGB") if classifier is not None else None
    except FileNotFoundError:
        return "image_missing", f"{path}: no such file", ""
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL reports undecodable data as OSError (UnidentifiedImageError included), some plugins as
        # SyntaxError or ValueError.
        return "image_unreadable", f"{path}: {exc}", ""
    if classifier is not None:
        try:
            keep = load_classifier(classifier)(rgb)
        except Exception as exc:  # the user's code: report it with the image it failed on
            raise ClassifierError(f"image_filter.classifier {classifier} failed on {path}: {exc!r}") from exc
        if not keep:
            return "classifier_rejected", f"{path}: rejected by {classifier}", ""
    return "", "", phash


def check_record(row: dict, min_width: int, min_height: int, classifier: str | None, hash_size: int) -> dict:
    hashes = []
    for path in row["image_files"]:
        reason, detail, phash = check_image(path, min_width, min_height, classifier, hash_size)
        if reason:
            return {"reject_reason": reason, "reject_detail": detail, "image_hashes": []}
        hashes.append(phash)
    return {"reject_reason": "", "reject_detail": "", "image_hashes": hashes}


def run(ctx: Context, report: StageReport) -> None:
    settings = ctx.config.image_filter
    paths = ctx.paths
    if settings.classifier:
        load_classifier(settings.classifier)  # a wrong path fails here, before any work
    hf.show_progress(ctx.progress)
    with hf.scratch(paths.dir) as cache:
        ds = hf.load_jsonl([paths.output("text")], hf.TEXT_COLUMNS, cache)
        if len(ds) == 0:
            return write_empty(paths, "image")
        num_proc = hf.processes(ctx.num_proc, len(ds))
        ds = ds.map(check_record, num_proc=num_proc, desc="image filter: reading images",
                    fn_kwargs={"min_width": settings.min_width, "min_height": settings.min_height,
                               "classifier": settings.classifier, "hash_size": ctx.config.dedup.hash_size})
        report.records_in = len(ds)
        report.rejected.update(Counter(r for r in ds["reject_reason"] if r))
        passed = ds.filter(lambda r: r == "", input_columns="reject_reason",
                           desc="image filter: keeping")
        with AtomicJsonl(paths.output("image")) as kept:
            kept.write_all(passed.remove_columns(["reject_reason", "reject_detail"]))
        failed = ds.filter(lambda r: r != "", input_columns="reject_reason",
                           desc="image filter: rejecting")
        with AtomicJsonl(paths.rejected("image")) as rejected:
            for row in failed.select_columns(["id", "reject_reason", "reject_detail"]):
                rejected.write({"id": row["id"], "reason": row["reject_reason"], "detail": row["reject_detail"]})
        report.records_out = kept.count
