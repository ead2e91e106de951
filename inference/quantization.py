"""The types a model's weights can be stored as: one table for the converter (what it can write, and how),
the model store (size estimates before a download) and the app (what it offers).

It lives here, at the bottom of the import order, because the model store needs it; the converter and the app
import it from here. It imports nothing, so the command line can consult it before choosing what to load.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantization:
    name: str  # as llama.cpp names the file type
    bytes_per_weight: float  # averaged over a whole model: for size estimates and disk-space checks
    llama_ftype: int | None = None  # made by llama.cpp's quantizer with this llama_ftype; None: written directly
    projector: bool = False  # the vision projector may be stored so too


TYPES: dict[str, Quantization] = {q.name: q for q in (
    Quantization("F32", 4.0, projector=True),
    Quantization("F16", 2.0, projector=True),
    Quantization("Q8_0", 1.07, llama_ftype=7, projector=True),
    Quantization("Q5_K_M", 0.72, llama_ftype=17),
    Quantization("Q4_K_M", 0.61, llama_ftype=15),
)}
TEXT = tuple(TYPES)  # the text model can be stored as any of them
PROJECTOR = tuple(name for name, q in TYPES.items() if q.projector)
DEFAULT = "Q4_K_M"


def default_projector(text: str) -> str:
    """The vision projector's type unless one is chosen: F32 beside an F32 text model (an exact reference),
    F16 otherwise."""
    return "F32" if text == "F32" else "F16"


def uses_quantizer(name: str) -> bool:
    """Whether making this type runs llama.cpp's quantizer (and so loads llama.cpp)."""
    return TYPES[name].llama_ftype is not None
