"""A converted Qwen2.5-VL pair in the real llama.cpp against transformers' Qwen2_5_VLForConditionalGeneration.

Compares tokenization on the bilingual medical text set, text logits, per-token image embeddings for images
of several shapes (square, non-square with partial attention windows, one above the pixel budget), the
pixels our preprocessing gives against transformers' processor, and greedy generation for a first question
with an image in the release's own prompt format. Every file type is gated on the same measures and thresholds as
the LLaVA path (`quality.py`: KL divergence and same top token of the text, the image embeddings' cosine), and the
result is kept with the model (verify.json) for the model manager. llama.cpp runs in a child process (it can
abort on a bad file, and torch and llama.cpp each bring their own OpenMP).
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from inference import prompt
from inference.imageprep import normalise, prepare_dynamic
from inference.store.manifest import Manifest

from . import quality
from .medical_texts import ALL as TEXTS
from .qwen25vl import Qwen25VLCheckpoint

# (width, height): a square of whole attention windows, a non-square one with partial windows, one that
# the pixel budget shrinks (for the tiny test model's 420x360 budget; a real budget may keep it whole).
IMAGE_SIZES = [(224, 224), (280, 196), (900, 700)]
QUESTION = "What does this image show? 请描述这张图像。"
FOLLOW_UP = "Compare these two images with the first one. 这两张图像有什么不同？"
_IMAGE, _ANSWER = "\0", "\1"
F32_THRESHOLDS = {"tokenization_mismatches": 0, "top1_agreement": 1.0, "image_cosine_min": 0.999,
                  "greedy_match": True}


@dataclass
class ImageParity:
    original_size: tuple[int, int]
    model_size: tuple[int, int]  # (width, height) after the smart resize
    tokens: int
    n_pos: int  # positions the image takes in the text model (max of its merged grid's sides)
    cosine_min: float
    cosine_mean: float
    pixels_max_abs_diff: float  # our preprocessing against transformers' processor, normalised pixel values


@dataclass
class Qwen25VLParity:
    quantization: str
    tokenization_texts: int
    tokenization_mismatches: int
    logits_max_abs_diff: float
    top1_agreement: float
    images: list[ImageParity]
    greedy_tokens_reference: list[int]
    greedy_tokens_llama: list[int]
    # A two-image follow-up after the first answer: llama.cpp continues from its KV cache (no image of the
    # first turn encoded again), transformers runs the whole conversation.
    follow_up_tokens_reference: list[int]
    follow_up_tokens_llama: list[int]
    # The quality gate's measures (quality.py), as `huatuo verify` reports them for every family.
    mmproj_quantization: str = ""
    kv_cache: str = "f16"
    tokenizer_reference: str = "transformers AutoTokenizer (the release's tokenizer.json)"
    logit_positions: int = 0
    kld_mean: float = 0.0
    kld_p99: float = 0.0
    kld_max: float = 0.0
    same_top_token: float = 0.0
    thresholds: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def image_cosine_min(self) -> float:
        return min(i.cosine_min for i in self.images)

    @property
    def image_cosine_mean(self) -> float:
        return float(np.average([i.cosine_mean for i in self.images], weights=[i.tokens for i in self.images]))

    @property
    def image_tokens(self) -> int:
        return sum(i.tokens for i in self.images)

    @property
    def greedy_match(self) -> bool:
        return self.greedy_tokens_llama == self.greedy_tokens_reference

    @property
    def follow_up_match(self) -> bool:
        return self.follow_up_tokens_llama == self.follow_up_tokens_reference

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "greedy_match": self.greedy_match,
                "follow_up_match": self.follow_up_match, "image_cosine_min": self.image_cosine_min,
                "image_cosine_mean": self.image_cosine_mean, "image_tokens": self.image_tokens}


def first_question_pieces(ckpt: Qwen25VLCheckpoint, question: str = QUESTION) -> tuple[str, str]:
    """The first-turn prompt in the release's chat template, split where the image's tokens go."""
    text = prompt.render_chat_template(ckpt.chat_template, [prompt.Turn(question, n_images=1)], image_marker=_IMAGE)
    before, after = text.split(_IMAGE)
    return before, after


def follow_up_pieces(ckpt: Qwen25VLCheckpoint) -> list[str]:
    """What a two-image follow-up adds after the first answer's tokens: text pieces, with None for each image."""
    turns = [prompt.Turn(QUESTION, n_images=1, answer=_ANSWER), prompt.Turn(FOLLOW_UP, n_images=2)]
    text = prompt.render_chat_template(ckpt.chat_template, turns, image_marker=_IMAGE).split(_ANSWER, 1)[1]
    pieces: list[str | None] = []
    for i, part in enumerate(text.split(_IMAGE)):
        if i:
            pieces.append(None)
        pieces.append(part)
    return pieces


def verify_qwen25vl(src: str | Path, out: str | Path, new_tokens: int = 24,
                    image_sizes: list[tuple[int, int]] = IMAGE_SIZES) -> Qwen25VLParity:
    from .verify import record_result, sample_image

    ckpt = Qwen25VLCheckpoint(src)
    out = Path(out)
    manifest = Manifest.read(out)
    text_path, mmproj_path = manifest.paths(out)
    v = ckpt.vision
    originals = [sample_image(size) for size in image_sizes]
    prepared = [prepare_dynamic(image, v.min_pixels, v.max_pixels, v.factor) for image in originals]
    pngs = []
    for image in prepared:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ckpt.path)
    reference_ids = [tokenizer(t, add_special_tokens=False).input_ids for t in TEXTS]
    logits_ids = [i for ids in reference_ids[:3] + reference_ids[12:14] for i in ids]
    pieces = first_question_pieces(ckpt)
    follow_up = follow_up_pieces(ckpt)
    kv_f32 = manifest.text.quantization == "F32"

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        native = pool.submit(_native_side, str(text_path), str(mmproj_path), TEXTS, logits_ids, pngs, pieces,
                             follow_up, new_tokens, kv_f32).result()

    ref = _reference_side(ckpt, tokenizer, logits_ids, originals, pieces, follow_up, new_tokens, native)
    diff = np.abs(native["logits"] - ref["logits"])
    text_stats = quality.text_stats([(ref["logits"], native["logits"])])
    text_quant, mmproj_quant = manifest.text.quantization, manifest.mmproj.quantization
    images = []
    for i, original in enumerate(originals):
        emb, ref_emb = native["images"][i]["embeddings"], ref["images"][i]
        cos = (emb * ref_emb).sum(-1) / (np.linalg.norm(emb, axis=-1) * np.linalg.norm(ref_emb, axis=-1)) \
            if emb.shape == ref_emb.shape else np.zeros(1)
        ours = normalise(prepared[i])
        theirs = ref["pixels"][i]
        images.append(ImageParity(
            original_size=original.size, model_size=prepared[i].size, tokens=int(emb.shape[0]),
            n_pos=native["images"][i]["n_pos"], cosine_min=float(cos.min()), cosine_mean=float(cos.mean()),
            pixels_max_abs_diff=float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else float("inf"),
        ))
    report = Qwen25VLParity(
        quantization=manifest.text.quantization,
        tokenization_texts=len(TEXTS),
        tokenization_mismatches=sum(a != b for a, b in zip(reference_ids, native["token_ids"], strict=True)),
        logits_max_abs_diff=float(diff.max()),
        top1_agreement=float((native["logits"].argmax(-1) == ref["logits"].argmax(-1)).mean()),
        images=images,
        greedy_tokens_reference=ref["greedy"],
        greedy_tokens_llama=native["greedy"],
        follow_up_tokens_reference=ref["follow_up"],
        follow_up_tokens_llama=native["follow_up"],
        mmproj_quantization=mmproj_quant, kv_cache="f32" if kv_f32 else "f16",
        logit_positions=text_stats["logit_positions"], kld_mean=text_stats["kld_mean"],
        kld_p99=text_stats["kld_p99"], kld_max=text_stats["kld_max"], same_top_token=text_stats["same_top_token"],
        thresholds=quality.thresholds_json(text_quant, mmproj_quant),
    )
    for i, image in enumerate(images):
        expected = ref["images"][i].shape[0]
        if image.tokens != expected:
            report.failures.append(f"image {image.original_size}: {image.tokens} tokens, expected {expected}")
    if not native["greedy"]:
        report.failures.append("llama.cpp generated nothing")
    if report.quantization == "F32":
        t = F32_THRESHOLDS
        if report.tokenization_mismatches > t["tokenization_mismatches"]:
            report.failures.append(f"{report.tokenization_mismatches} texts tokenize differently")
        if report.top1_agreement < t["top1_agreement"]:
            report.failures.append(f"top-1 agreement {report.top1_agreement:.4f} < {t['top1_agreement']}")
        if report.image_cosine_min < t["image_cosine_min"]:
            report.failures.append(f"image embedding cosine {report.image_cosine_min:.6f} < {t['image_cosine_min']}")
        if not report.greedy_match:
            report.failures.append("greedy generation differs from the reference")
        if not report.follow_up_match:
            report.failures.append("greedy generation of the follow-up differs from the reference")
    elif report.tokenization_mismatches:  # every file type carries the same vocabulary
        report.failures.append(f"{report.tokenization_mismatches} texts tokenize differently")
    for kind, quant, table in (("text model", text_quant, quality.TEXT_THRESHOLDS),
                               ("vision projector", mmproj_quant, quality.IMAGE_THRESHOLDS)):
        if quant not in table:
            report.notes.append(f"no thresholds for a {quant} {kind}: its figures are reported, not gated")
    measures = {"kld_mean": report.kld_mean, "kld_p99": report.kld_p99, "same_top_token": report.same_top_token,
                "image_cosine_min": report.image_cosine_min, "image_cosine_mean": report.image_cosine_mean}
    report.failures += quality.check(measures, text_quant, mmproj_quant)
    record_result(out, manifest, report)
    return report


def _reference_side(ckpt, tokenizer, logits_ids, originals, pieces, follow_up, new_tokens, native) -> dict:
    import torch

    from .qwen25vl_reference import image_features, load_reference, processed_pixels

    model = load_reference(ckpt)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([logits_ids])).logits[0].float().numpy()
    images = [image_features(model, ckpt, image).numpy() for image in originals]
    pixels = []
    for image in originals:
        values, grid = processed_pixels(ckpt, image)
        pixels.append(_unpatchify(values.numpy(), grid[0].tolist(), ckpt.vision))
    eos = native["eos"]
    greedy = greedy_reference(model, ckpt, tokenizer, [pieces[0], None, pieces[1]], originals[:1], new_tokens, eos)
    # The follow-up continues from the answer llama.cpp gave (the same tokens when the first turn matched).
    conversation = [pieces[0], None, pieces[1], native["greedy"], *follow_up]
    follow = greedy_reference(model, ckpt, tokenizer, conversation, originals, new_tokens, eos)
    return {"logits": logits, "images": images, "pixels": pixels, "greedy": greedy, "follow_up": follow}


def greedy_reference(model, ckpt, tokenizer, pieces, images, new_tokens: int, eos_ids) -> list[int]:
    """Greedy generation in transformers from pieces: text, token ids, or None for the next of `images`, each
    image's pad token expanded to its token count as transformers' processor does (so the M-RoPE positions
    are transformers' own)."""
    import torch

    from .qwen25vl_reference import processed_pixels

    image_id = ckpt.config["image_token_id"]
    ids: list[int] = []
    pixel_values, grids = [], []
    images = iter(images)
    for piece in pieces:
        if piece is None:
            values, grid = processed_pixels(ckpt, next(images))
            pixel_values.append(values)
            grids.append(grid)
            ids += [image_id] * (int(grid[0].prod()) // ckpt.vision.merge_size**2)
        elif isinstance(piece, str):
            ids += tokenizer(piece, add_special_tokens=False).input_ids
        else:
            ids += list(piece)
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values=torch.cat(pixel_values),
            image_grid_thw=torch.cat(grids), mm_token_type_ids=(input_ids == image_id).int(),
            max_new_tokens=new_tokens, do_sample=False, eos_token_id=list(eos_ids), pad_token_id=eos_ids[0],
        )
    generated = [int(t) for t in output[0, input_ids.shape[1]:]]
    while generated and generated[-1] in eos_ids:
        generated.pop()
    return generated


def _unpatchify(values: np.ndarray, grid: list[int], v) -> np.ndarray:
    """transformers' flattened patches (merge-ordered, temporally doubled) back to one CHW image."""
    _, gh, gw = grid
    m, p, c = v.merge_size, v.patch_size, 3
    patches = values.reshape(gh // m, gw // m, m, m, c, v.temporal_patch_size, p, p)[..., 0, :, :]
    # (bh, bw, mh, mw, c, ph, pw) -> (c, bh, mh, ph, bw, mw, pw)
    return patches.transpose(4, 0, 2, 5, 1, 3, 6).reshape(c, gh * p, gw * p)


def _native_side(text_path, mmproj_path, texts, logits_ids, pngs, pieces, follow_up, new_tokens, kv_f32) -> dict:
    from inference.native import NativeModel, quiet_native_logs

    quiet_native_logs()
    model = NativeModel(text_path, mmproj_path, n_ctx=2048, kv_f32=kv_f32)
    try:
        token_ids = [model.tokenize(t) for t in texts]
        model.decode_tokens(logits_ids, 0, all_logits=True)
        logits = np.stack([model.logits(i) for i in range(len(logits_ids))])
        model.truncate(0)
        images, encoded = [], []
        for png in pngs:
            image = model.encode_image(png)
            images.append({"embeddings": image.embeddings, "n_pos": image.n_pos})
            encoded.append(image)
        n_past = model.decode_tokens(model.tokenize(pieces[0]), 0)
        n_past = model.decode_image(encoded[0], n_past)
        n_past = model.decode_tokens(model.tokenize(pieces[1]), n_past)
        greedy, n_past = _greedy(model, n_past, new_tokens)
        # The follow-up: only its own pieces are processed, after what the KV cache already holds.
        later_images = iter(encoded[1:])
        for piece in follow_up:
            n_past = model.decode_image(next(later_images), n_past) if piece is None else model.decode_tokens(
                model.tokenize(piece), n_past)
        follow, n_past = _greedy(model, n_past, new_tokens)
        eos = [t for t in range(model.n_vocab) if model.is_end_of_generation(t)]
        for image in encoded:
            model.free_image(image)
        return {"token_ids": token_ids, "logits": logits, "images": images, "greedy": greedy, "follow_up": follow,
                "eos": eos}
    finally:
        model.close()


def _greedy(model, n_past: int, new_tokens: int) -> tuple[list[int], int]:
    """Greedy tokens from the last logits; every kept token is put in the KV cache (an end token is not)."""
    tokens: list[int] = []
    for _ in range(new_tokens):
        token = int(model.logits().argmax())
        if model.is_end_of_generation(token):
            break
        tokens.append(token)
        n_past = model.decode_tokens([token], n_past)
    return tokens, n_past
