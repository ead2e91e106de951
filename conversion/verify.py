"""`huatuo verify SRC OUT`: the GGUF pair in the real llama.cpp against transformers' reference model.

Compares tokenization on a bilingual medical text set, the next-token distributions at every position of
that set (KL divergence, same top token: `quality.py`), per-token image embeddings (the official
preprocessing, then the projector output) and greedy multimodal generation, and gates each file on the
thresholds of its type. llama.cpp runs in a child process (it can abort on a bad file, and torch and
llama.cpp each bring their own OpenMP). The result is also written to the model folder (verify.json), where
the model manager reads it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from inference import prompt
from inference.imageprep import prepare
from inference.store.manifest import Manifest
from inference.store.models import VERIFICATION_FORMAT, VERIFICATION_NAME

from . import quality
from .checkpoint import Checkpoint
from .medical_texts import ALL as TEXTS
from .tokenizer import reference_tokenizer

QUESTION = "What does this image show? 请描述这张图像。"


@dataclass
class VerifyReport:
    quantization: str
    mmproj_quantization: str
    tokenization_texts: int
    tokenization_mismatches: int
    tokenizer_reference: str
    # Next-token distributions at every position of the text set (each text its own sequence).
    logit_positions: int
    kld_mean: float
    kld_p99: float
    kld_max: float
    same_top_token: float
    logits_max_abs_diff: float
    image_tokens: int
    image_cosine_min: float
    image_cosine_mean: float
    greedy_match: bool
    greedy_tokens_reference: list[int]
    greedy_tokens_llama: list[int]
    kv_cache: str
    thresholds: dict = field(default_factory=dict)
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def top1_agreement(self) -> float:  # the name older scripts read
        return self.same_top_token

    def to_dict(self) -> dict:
        return {**asdict(self), "top1_agreement": self.top1_agreement}


def sample_image(size: tuple[int, int] = (300, 220)) -> Image.Image:
    """A deterministic, non-square, radiograph-like picture (so padding is exercised)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = 60 + 120 * np.exp(-(((x - width / 2) / (width / 3)) ** 2 + ((y - height / 2) / (height / 2.5)) ** 2))
    noise = np.random.default_rng(7).normal(0, 12, (height, width))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.55, height * 0.3, width * 0.7, height * 0.5), fill=(230, 225, 220))
    draw.text((8, 8), "R", fill=(255, 255, 255))
    return image


def verify(src: str | Path, out: str | Path, new_tokens: int = 24):
    """The converted folder against its reference, chosen by the family its manifest records."""
    family = Manifest.read(Path(out)).family
    if family == "qwen2.5-vl":  # transformers' Qwen2_5_VLForConditionalGeneration
        from .qwen25vl_verify import verify_qwen25vl

        return verify_qwen25vl(src, out, new_tokens)
    if family != "llava":
        raise ValueError(f"{out}: no verification reference for the model family {family!r}")
    return verify_llava(src, out, new_tokens)


def verify_llava(src: str | Path, out: str | Path, new_tokens: int = 24) -> VerifyReport:
    """A LLaVA-family pair against transformers' LLaVA built from the checkpoint."""
    ckpt = Checkpoint(src)
    out = Path(out)
    manifest = Manifest.read(out)
    text_path, mmproj_path = manifest.paths(out)
    text_quant, mmproj_quant = manifest.text.quantization, manifest.mmproj.quantization
    size = ckpt.vision.image_size
    image = prepare(sample_image(), size)
    png = io.BytesIO()
    image.save(png, format="PNG")

    tokenize, tokenizer_name, notes = reference_tokenizer(ckpt.path, ckpt.text.family)
    reference_ids = [tokenize(t) for t in TEXTS]
    pieces = _prompt_pieces(QUESTION)
    kv_f32 = text_quant == "F32"

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        native = pool.submit(_native_side, str(text_path), str(mmproj_path), TEXTS, reference_ids, png.getvalue(),
                             pieces, new_tokens, kv_f32).result()

    ref_logits, ref_image, ref_greedy = _reference_side(ckpt, reference_ids, image, pieces, tokenize, new_tokens,
                                                        native["eos"])
    mismatches = sum(a != b for a, b in zip(reference_ids, native["token_ids"], strict=True))
    text = quality.text_stats(zip(ref_logits, native["logits"], strict=True))
    emb = native["image_embeddings"]
    report = VerifyReport(
        quantization=text_quant,
        mmproj_quantization=mmproj_quant,
        tokenization_texts=len(TEXTS),
        tokenization_mismatches=int(mismatches),
        tokenizer_reference=tokenizer_name,
        **text,
        image_tokens=int(emb.shape[0]),
        **quality.image_stats(ref_image, emb),
        greedy_match=native["greedy"] == ref_greedy,
        greedy_tokens_reference=ref_greedy,
        greedy_tokens_llama=native["greedy"],
        kv_cache="f32" if kv_f32 else "f16",
        thresholds=quality.thresholds_json(text_quant, mmproj_quant),
        notes=notes,
    )
    if emb.shape[0] != ckpt.vision.n_image_tokens:
        report.failures.append(f"image_tokens {emb.shape[0]} != {ckpt.vision.n_image_tokens}")
    if not native["greedy"]:
        report.failures.append("greedy_tokens_llama: llama.cpp generated nothing")
    # Every file type carries the same vocabulary: tokenization must match whatever the weights' type.
    if report.tokenization_mismatches:
        report.failures.append(f"tokenization_mismatches {report.tokenization_mismatches} > 0 (of "
                               f"{report.tokenization_texts} texts)")
    for kind, quant, table in (("text model", text_quant, quality.TEXT_THRESHOLDS),
                               ("vision projector", mmproj_quant, quality.IMAGE_THRESHOLDS)):
        if quant not in table:
            report.notes.append(f"no thresholds for a {quant} {kind}: its figures are reported, not gated")
    report.failures += quality.check(asdict(report), text_quant, mmproj_quant)
    if text_quant == "F32" and not report.greedy_match:  # F32 weights and KV cache: the same greedy answer
        report.failures.append("greedy_match: greedy generation differs from the reference")
    from inference.native import patched_build_problem

    if problem := patched_build_problem():
        report.failures.append(problem)
    report.passed = not report.failures
    record_result(out, manifest, report)
    return report


def record_result(out: Path, manifest: Manifest, report) -> None:
    """Write the result next to manifest.json, tied to the files it was measured on (by their hashes)."""
    record = {
        "format": VERIFICATION_FORMAT,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "text_sha256": manifest.text.sha256,
        "mmproj_sha256": manifest.mmproj.sha256,
        **report.to_dict(),
    }
    path = out / VERIFICATION_NAME
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:  # a read-only model folder: the result is still printed
        with contextlib.suppress(OSError):
            partial.unlink()
        report.notes.append(f"could not write {path}: {exc}")


def _prompt_pieces(question: str) -> list[str | None]:
    """The first-turn prompt split at its image (None marks where the image goes)."""
    text = prompt.render([prompt.Turn(question, n_images=1)])
    before, after = text.split(prompt.IMAGE_PLACEHOLDER, 1)
    return [before, None, after]


def _reference_side(ckpt, text_ids, image, pieces, tokenize, new_tokens, eos_ids):
    import torch

    from .reference import greedy_reference, image_features, load_reference

    model = load_reference(ckpt)
    with torch.no_grad():
        logits = [model(input_ids=torch.tensor([ids])).logits[0].float().numpy() for ids in text_ids]
    features = image_features(model, image).numpy()
    generated = greedy_reference(model, [image if p is None else p for p in pieces], tokenize, new_tokens, eos_ids)
    return logits, features, generated


def _native_side(text_path, mmproj_path, texts, text_ids, png, pieces, new_tokens, kv_f32):
    from inference.native import NativeModel, quiet_native_logs

    quiet_native_logs()
    model = NativeModel(text_path, mmproj_path, n_ctx=2048, kv_f32=kv_f32)
    try:
        token_ids = [model.tokenize(t) for t in texts]
        logits = []
        for ids in text_ids:  # each text its own sequence from position 0, like the reference
            model.truncate(0)
            logits.append(_sequence_logits(model, ids))
        model.truncate(0)
        image = model.encode_image(png)
        n_past = 0
        for piece in pieces:
            n_past = model.decode_image(image, n_past) if piece is None else model.decode_tokens(
                model.tokenize(piece), n_past)
        greedy: list[int] = []
        for _ in range(new_tokens):
            token = int(model.logits().argmax())
            if model.is_end_of_generation(token):
                break
            greedy.append(token)
            n_past = model.decode_tokens([token], n_past)
        eos = [t for t in range(model.n_vocab) if model.is_end_of_generation(t)]
        model.free_image(image)
        return {"token_ids": token_ids, "logits": logits, "image_embeddings": image.embeddings,
                "greedy": greedy, "eos": eos}
    finally:
        model.close()


def _sequence_logits(model, ids: list[int]) -> np.ndarray:
    """The logits at every position of ids decoded from position 0 (a decode keeps only its own batch's)."""
    rows = []
    for start in range(0, len(ids), model.n_batch):
        part = ids[start:start + model.n_batch]
        model.decode_tokens(part, start, all_logits=True)
        rows += [model.logits(i) for i in range(len(part))]
    return np.stack(rows)
