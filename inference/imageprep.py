"""Image preprocessing exactly as the official code does it, done once here for every consumer.

LLaVA-style HuatuoGPT-Vision (official order): convert to RGB, pad to a square (image centred, background =
CLIP mean x 255), then resize to the model's size with bicubic. llama.cpp's mtmd resizes first and pads after,
which differs on border patches; giving it an image that is already the model's square size makes it leave
the pixels alone. Qwen2.5-VL: see `prepare_dynamic` (the image keeps its own size and aspect ratio).
"""

from __future__ import annotations

import io
import math

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


# --- Qwen2.5-VL: the image at (close to) its own size and aspect ratio ---------------------------------
# transformers' processor (and qwen_vl_utils, which the model was trained with) resize to the smart-resize
# size with bicubic and stretch; llama.cpp's mtmd would letterbox into that size with black bars instead.
# An image that already has the size (multiples of 28 within the pixel budget) is left alone by mtmd.
QWEN25VL_FACTOR = 28  # patch 14 x merge 2: one image token covers 28 x 28 pixels
QWEN25VL_DEFAULT_MAX_PIXELS = 420 * 360  # HuatuoGPT-Vision-7B-Qwen2.5VL's training budget
QWEN25VL_DEFAULT_MAX_TOKENS = QWEN25VL_DEFAULT_MAX_PIXELS // QWEN25VL_FACTOR**2  # 192


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' smart resize: sides rounded to multiples of `factor`, the area kept between min_pixels
    and max_pixels, the aspect ratio as close as possible. Returns (height, width)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"the image's aspect ratio {max(height, width) / min(height, width):.0f}:1 is above 200:1")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def prepare_dynamic(image: Image.Image, min_pixels: int, max_pixels: int, factor: int = 28) -> Image.Image:
    """RGB, bicubic-resized (stretched) to its smart-resize size: the Qwen2.5-VL model's exact input."""
    image = image.convert("RGB")
    height, width = smart_resize(image.height, image.width, factor, min_pixels, max_pixels)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    return image


def prepare_dynamic_png(data: bytes | Image.Image, min_pixels: int, max_pixels: int, factor: int = 28) -> bytes:
    """The prepared image as PNG bytes (lossless), as llama.cpp's image loader takes it."""
    image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    prepare_dynamic(image, min_pixels, max_pixels, factor).save(buffer, format="PNG")
    return buffer.getvalue()
