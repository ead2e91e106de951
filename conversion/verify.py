"""`huatuo verify SRC OUT`: the GGUF pair in the real llama.cpp against transformers' reference model.

Compares tokenization on a bilingual medical text set, text logits, per-token image embeddings (the
official preprocessing, then the projector output) and greedy multimodal generation. llama.cpp runs in a
child process (it can abort on a bad file, and torch and llama.cpp each bring their own OpenMP).
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from inference import prompt
from inference.imageprep import prepare
from inference.store.manifest import Manifest

from .checkpoint import Checkpoint
from .medical_texts import ALL as TEXTS
from .tokenizer import reference_tokenizer

# Thresholds for F32 files; other quantizations are reported, and must load and generate.
F32_THRESHOLDS = {"tokenization_mismatches": 0, "top1_agreement": 1.0, "image_cosine_min": 0.999, "greedy_match": True}
QUESTION = "What does this image show? 请描述这张图像。"


@dataclass
class VerifyReport:
    quantization: str
    tokenization_texts: int
    tokenization_mismatches: int
    tokenizer_reference: str
    logits_max_abs_diff: float
    top1_agreement: float
    image_tokens: int
    image_cosine_min: float
    image_cosine_mean: float
    greedy_match: bool
    greedy_tokens_reference: list[int]
    greedy_tokens_llama: list[int]
    kv_cache: str
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


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


def verify(src: str | Path, out: str | Path, new_tokens: int = 24) -> VerifyReport:
    ckpt = Checkpoint(src)
    out = Path(out)
    manifest = Manifest.read(out)
    text_path, mmproj_path = manifest.paths(out)
    size = ckpt.vision.image_size
    image = prepare(sample_image(), size)
    png = io.BytesIO()
    image.save(png, format="PNG")

    tokenize, tokenizer_name, notes = reference_tokenizer(ckpt.path, ckpt.text.family)
    reference_ids = [tokenize(t) for t in TEXTS]
    logits_ids = [i for ids in reference_ids[:3] + reference_ids[12:14] for i in ids]
    pieces = _prompt_pieces(QUESTION)
    kv_f32 = manifest.text.quantization == "F32"

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        native = pool.submit(_native_side, str(text_path), str(mmproj_path), TEXTS, logits_ids, png.getvalue(),
                             pieces, new_tokens, kv_f32).result()

    ref_logits, ref_image, ref_greedy = _reference_side(ckpt, logits_ids, image, pieces, tokenize, new_tokens,
                                                        native["eos"])
    mismatches = sum(a != b for a, b in zip(reference_ids, native["token_ids"], strict=True))
    diff = np.abs(native["logits"] - ref_logits)
    top1 = float((native["logits"].argmax(-1) == ref_logits.argmax(-1)).mean())
    emb = native["image_embeddings"]
    cos = (emb * ref_image).sum(-1) / (np.linalg.norm(emb, axis=-1) * np.linalg.norm(ref_image, axis=-1))
    report = VerifyReport(
        quantization=manifest.text.quantization,
        tokenization_texts=len(TEXTS),
        tokenization_mismatches=int(mismatches),
        tokenizer_reference=tokenizer_name,
        logits_max_abs_diff=float(diff.max()),
        top1_agreement=top1,
        image_tokens=int(emb.shape[0]),
        image_cosine_min=float(cos.min()),
        image_cosine_mean=float(cos.mean()),
        greedy_match=native["greedy"] == ref_greedy,
        greedy_tokens_reference=ref_greedy,
        greedy_tokens_llama=native["greedy"],
        kv_cache="f32" if kv_f32 else "f16",
        notes=notes,
    )
    if emb.shape[0] != ckpt.vision.n_image_tokens:
        report.failures.append(f"{emb.shape[0]} image tokens, expected {ckpt.vision.n_image_tokens}")
    if not native["greedy"]:
        report.failures.append("llama.cpp generated nothing")
    if manifest.text.quantization == "F32":
        t = F32_THRESHOLDS
        if report.tokenization_mismatches > t["tokenization_mismatches"]:
            report.failures.append(f"{report.tokenization_mismatches} texts tokenize differently")
        if report.top1_agreement < t["top1_agreement"]:
            report.failures.append(f"top-1 agreement {report.top1_agreement:.4f} < {t['top1_agreement']}")
        if report.image_cosine_min < t["image_cosine_min"]:
            report.failures.append(f"image embedding cosine {report.image_cosine_min:.6f} < {t['image_cosine_min']}")
        if not report.greedy_match:
            report.failures.append("greedy generation differs from the reference")
    from inference.native import patched_build_problem

    if problem := patched_build_problem():
        report.failures.append(problem)
    report.passed = not report.failures
    return report


def _prompt_pieces(question: str) -> list[str | None]:
    """The first-turn prompt split at its image (None marks where the image goes)."""
    text = prompt.render([prompt.Turn(question, n_images=1)])
    before, after = text.split(prompt.IMAGE_PLACEHOLDER, 1)
    return [before, None, after]


def _reference_side(ckpt, logits_ids, image, pieces, tokenize, new_tokens, eos_ids):
    import torch

    from .reference import greedy_reference, image_features, load_reference

    model = load_reference(ckpt)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([logits_ids])).logits[0].float().numpy()
    features = image_features(model, image).numpy()
    generated = greedy_reference(model, [image if p is None else p for p in pieces], tokenize, new_tokens, eos_ids)
    return logits, features, generated


def _native_side(text_path, mmproj_path, texts, logits_ids, png, pieces, new_tokens, kv_f32):
    from inference.native import NativeModel, quiet_native_logs

    quiet_native_logs()
    model = NativeModel(text_path, mmproj_path, n_ctx=2048, kv_f32=kv_f32)
    try:
        token_ids = [model.tokenize(t) for t in texts]
        model.decode_tokens(logits_ids, 0, all_logits=True)
        logits = np.stack([model.logits(i) for i in range(len(logits_ids))])
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
