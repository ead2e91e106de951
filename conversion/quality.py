"""How far a converted model is from its full-precision reference, and how far each file type may be.

The text measure is the one llama.cpp's `llama-perplexity --kl-divergence` reports: the KL divergence of the
converted model's next-token distribution from the reference one, at every position of a fixed text set
(its mean and 99th percentile), and the share of positions where both pick the same top token. The
projector's measure is the cosine between the reference's and llama.cpp's embedding of each image token.
The thresholds come from measurements with a margin (conversion/README.md says how they were measured).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# The gated measures, in the order they are shown.
MEASURES = ("kld_mean", "kld_p99", "same_top_token", "image_cosine_min", "image_cosine_mean")


@dataclass(frozen=True)
class Limit:
    measure: str  # one of MEASURES
    bound: str  # "max": the measure may not exceed value; "min": it may not fall below it
    value: float

    def holds(self, measured: float) -> bool:
        if not np.isfinite(measured):
            return False
        return measured <= self.value if self.bound == "max" else measured >= self.value

    def failure(self, measured: float, quantization: str) -> str:
        sign = ">" if self.bound == "max" else "<"
        return f"{self.measure} {measured:.6g} {sign} {self.value:g} (the {quantization} threshold)"


def _text(kld_mean: float, kld_p99: float, same_top_token: float) -> tuple[Limit, ...]:
    return (Limit("kld_mean", "max", kld_mean), Limit("kld_p99", "max", kld_p99),
            Limit("same_top_token", "min", same_top_token))


def _image(cosine_min: float, cosine_mean: float) -> tuple[Limit, ...]:
    return Limit("image_cosine_min", "min", cosine_min), Limit("image_cosine_mean", "min", cosine_mean)


# By the text GGUF's type. KLD in nats per token; same_top_token a fraction of positions. Each limit is about
# 2-5x the worst figure measured on correct conversions (F32, F16: far above their rounding noise, below the
# next type's figures); the measurements and the defects they must catch are in conversion/README.md.
TEXT_THRESHOLDS: dict[str, tuple[Limit, ...]] = {
    "F32": _text(kld_mean=1e-7, kld_p99=1e-6, same_top_token=0.995),
    "F16": _text(kld_mean=1e-4, kld_p99=1e-3, same_top_token=0.99),
    "Q8_0": _text(kld_mean=5e-3, kld_p99=0.02, same_top_token=0.9),
    "Q5_K_M": _text(kld_mean=0.08, kld_p99=0.25, same_top_token=0.75),
    "Q4_K_M": _text(kld_mean=0.3, kld_p99=0.8, same_top_token=0.6),
}
# By the mmproj GGUF's own type.
IMAGE_THRESHOLDS: dict[str, tuple[Limit, ...]] = {
    "F32": _image(cosine_min=0.99999, cosine_mean=0.99999),
    "F16": _image(cosine_min=0.9999, cosine_mean=0.9999),
    "Q8_0": _image(cosine_min=0.999, cosine_mean=0.9995),
}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, in float64 (the KLD of a good F32 file is far below float32's resolution)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kld_per_position(reference_logits: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """KL(P_reference || P_converted) at each position (rows): sum p_ref (log p_ref - log p_conv), in nats."""
    ref, conv = log_softmax(reference_logits), log_softmax(logits)
    return np.maximum((np.exp(ref) * (ref - conv)).sum(axis=-1), 0.0)  # >= 0 up to rounding


def text_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Over (reference logits, converted logits) pairs of shape (positions, vocabulary), one per text."""
    kld, same, max_diff = [], [], 0.0
    for reference, converted in pairs:
        kld.append(kld_per_position(reference, converted))
        same.append(reference.argmax(-1) == converted.argmax(-1))
        max_diff = max(max_diff, float(np.abs(np.asarray(converted, np.float64) - reference).max()))
    kld_all, same_all = np.concatenate(kld), np.concatenate(same)
    return {
        "kld_mean": float(kld_all.mean()),
        "kld_p99": float(np.percentile(kld_all, 99)),
        "kld_max": float(kld_all.max()),
        "same_top_token": float(same_all.mean()),
        "logit_positions": int(kld_all.size),
        "logits_max_abs_diff": max_diff,
    }


def image_stats(reference: np.ndarray, embeddings: np.ndarray) -> dict:
    """Cosine of each image token's embedding with the reference's, (tokens, hidden) both."""
    ref, emb = np.asarray(reference, np.float64), np.asarray(embeddings, np.float64)
    cos = (ref * emb).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(emb, axis=-1))
    return {"image_cosine_min": float(cos.min()), "image_cosine_mean": float(cos.mean())}


def thresholds(text_quantization: str, mmproj_quantization: str) -> tuple[Limit, ...]:
    """The limits for this pair of file types (a type without a row here has no numeric gate)."""
    return TEXT_THRESHOLDS.get(text_quantization, ()) + IMAGE_THRESHOLDS.get(mmproj_quantization, ())


def check(measures: dict, text_quantization: str, mmproj_quantization: str) -> list[str]:
    """One failure line, naming the measure, per limit the measures break."""
    failures = []
    for limit in thresholds(text_quantization, mmproj_quantization):
        quantization = mmproj_quantization if limit.measure.startswith("image_") else text_quantization
        if not limit.holds(measures[limit.measure]):
            failures.append(limit.failure(measures[limit.measure], quantization))
    return failures


def thresholds_json(text_quantization: str, mmproj_quantization: str) -> dict:
    """{"kld_mean": {"max": 0.2}, "same_top_token": {"min": 0.6}, ...}: the limits keyed like the measures."""
    return {limit.measure: {limit.bound: limit.value} for limit in thresholds(text_quantization, mmproj_quantization)}
