"""Draws the images of the built-in sample deck: plain shapes on a grey field, each labelled as synthetic.

They contain no patient data and no third-party material. Run from the repository root to redraw them:
`python resources/decks/draw_sample_images.py`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = 320
FIELD = (40, 56, 280, 296)  # the grey oval the shapes sit in
OUT = Path(__file__).parent / "sample"


def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (SIZE, SIZE), 12)
    draw = ImageDraw.Draw(image)
    draw.ellipse(FIELD, fill=96)
    draw.text((10, 8), "SYNTHETIC", fill=230, font=ImageFont.load_default(size=18))
    draw.text((10, SIZE - 20), "drawn test image - no patient data", fill=170, font=ImageFont.load_default(size=12))
    return image, draw


def spot() -> Image.Image:
    image, draw = canvas()
    draw.ellipse((96, 106, 132, 142), fill=235)  # upper left
    return image


def ovals() -> Image.Image:
    image, draw = canvas()
    for box in ((90, 120, 140, 150), (170, 100, 230, 135), (130, 200, 190, 240)):
        draw.ellipse(box, fill=38)
    return image


def triangle_and_square() -> Image.Image:
    image, draw = canvas()
    draw.polygon([(160, 130), (196, 196), (124, 196)], fill=225)  # near the centre
    draw.rectangle((214, 222, 238, 246), fill=30)  # lower right
    return image


def change(radius: int) -> Image.Image:
    image, draw = canvas()
    draw.rectangle((84, 166, 108, 190), fill=40)
    draw.ellipse((210 - radius, 176 - radius, 210 + radius, 176 + radius), fill=220)
    return image


def brightness() -> Image.Image:
    image, draw = canvas()
    draw.ellipse((88, 150, 140, 202), fill=150)  # left, dimmer
    draw.rectangle((184, 152, 232, 200), fill=235)  # right, brighter
    return image


def outline_with_gap() -> Image.Image:
    image, draw = canvas()
    draw.arc(FIELD, start=-60, end=240, fill=240, width=5)  # open at the top
    return image


def main() -> None:
    OUT.mkdir(exist_ok=True)
    drawings = {"spot.png": spot(), "ovals.png": ovals(), "triangle_square.png": triangle_and_square(),
                "change_before.png": change(14), "change_after.png": change(28), "brightness.png": brightness(),
                "outline.png": outline_with_gap()}
    for name, image in drawings.items():
        image.save(OUT / name, optimize=True)


if __name__ == "__main__":
    main()
