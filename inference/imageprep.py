"""Image preprocessing exactly as the official code does it, done once here for every consumer.

Official order: convert to RGB, pad to a square (image centred, background = CLIP mean x 255), then
resize to the model's size with bicubic. llama.cpp's mtmd resizes first and pads after, which differs on
border patches; giving it an image that is already the model's square size makes it leave the pixels alone.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PAD_COLOUR = tuple(int(m * 255) for m in CLIP_MEAN)  # (122, 116, 104)


def pad_to_square(image: Image.Image, colour: tuple[int, int, int] = PAD_COLOUR) -> Image.Image:
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), colour)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def prepare(image: Image.Image, size: int) -> Image.Image:
    """RGB, padded to square, bicubic-resized to size x size: the model's exact input."""
    square = pad_to_square(image.convert("RGB"))
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BICUBIC)
    return square


def prepare_png(data: bytes | Image.Image, size: int) -> bytes:
    """The prepared image as PNG bytes (lossless), as llama.cpp's image loader takes it."""
    image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    prepare(image, size).save(buffer, format="PNG")
    return buffer.getvalue()


def normalise(image: Image.Image) -> np.ndarray:
    """CHW float32 pixel values as CLIP expects them (for the reference model and training)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
