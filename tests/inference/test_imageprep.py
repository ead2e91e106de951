"""Pad-then-resize as the official code does, equal to CLIPImageProcessor on the padded image."""

import io

import numpy as np
from PIL import Image

from inference.imageprep import PAD_COLOUR, normalise, pad_to_square, prepare, prepare_png


def _image(width, height, mode="RGB"):
    rng = np.random.default_rng(width * height)
    if mode == "L":
        return Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8), "L")
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_pad_colour_is_the_clip_mean():
    assert PAD_COLOUR == (122, 116, 104)
    square = pad_to_square(_image(40, 20))
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == PAD_COLOUR and square.getpixel((39, 39)) == PAD_COLOUR


def test_prepare_gives_the_model_square_input_from_any_image():
    for width, height, mode in [(300, 200, "RGB"), (64, 500, "L"), (336, 336, "RGB")]:
        out = prepare(_image(width, height, mode), 336)
        assert out.size == (336, 336) and out.mode == "RGB"
    png = prepare_png(_image(50, 80), 112)
    assert Image.open(io.BytesIO(png)).size == (112, 112)


def test_matches_the_official_processor():
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    image = _image(300, 220)
    official = processor(pad_to_square(image), return_tensors="np")["pixel_values"][0]
    ours = normalise(prepare(image, 336))
    assert np.abs(official - ours).max() < 1e-5
