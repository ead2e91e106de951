"""Draws the app icon and writes it in each platform's format: PNG (Linux), ICO (Windows), ICNS (macOS).

    python installer/make_icons.py OUT_DIR

Drawn from code (a dark rounded square, a white cross-section ring and a teal spot) so no binary image
lives in the repository and every size is rendered sharp.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

NAME = "huatuo-vision"
BACKGROUND = (22, 38, 56, 255)
RING = (236, 241, 245, 255)
SPOT = (38, 178, 164, 255)
TISSUE = (112, 132, 152, 255)


def draw(size: int) -> Image.Image:
    scale = 4  # drawn larger, then reduced: smooth edges without an anti-aliasing pass
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 5, fill=BACKGROUND)
    margin, width = big * 0.17, max(scale, round(big * 0.07))
    pen.ellipse((margin, margin, big - margin, big - margin), outline=RING, width=width)
    inner = big * 0.30
    pen.ellipse((inner, inner * 1.05, big - inner * 1.35, big - inner * 1.15), fill=TISSUE)
    spot = big * 0.11
    cx, cy = big * 0.60, big * 0.44
    pen.ellipse((cx - spot, cy - spot, cx + spot, cy + spot), fill=SPOT)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def write_icons(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    large = draw(1024)
    paths = [out / f"{NAME}.png", out / f"{NAME}.ico", out / f"{NAME}.icns"]
    draw(256).save(paths[0])
    large.save(paths[1], sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    large.save(paths[2])
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python installer/make_icons.py OUT_DIR")
    for path in write_icons(Path(sys.argv[1])):
        print(path)
