"""Generated PubMed-like figure records (images and medical captions) for tests and benchmarks.

Images are drawn shapes on a gradient, different for every seed, so that their perceptual hashes differ;
captions are assembled from many interchangeable parts, so that two of them are rarely near-identical.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

MODALITIES = ("Axial CT", "Coronal CT", "Contrast-enhanced CT", "Sagittal T2-weighted MRI", "Axial FLAIR MRI",
              "Chest radiograph", "Ultrasound", "PET/CT", "Fundus photograph", "Histopathology (H&E staining)")
ORGANS = ("liver", "left lung", "right kidney", "pancreas", "brain", "spleen", "thyroid", "right breast",
          "lumbar spine", "heart", "gallbladder", "bladder", "prostate", "retina", "colon", "femur")
FINDINGS = ("hypodense lesion", "solitary nodule", "cystic mass", "calcification", "pleural effusion", "hematoma",
            "infarct", "abscess", "metastasis", "fracture", "aneurysm", "enhancing tumor", "stenosis", "polyp")
SIZES = ("8 mm", "1.2 cm", "2.5 cm", "3 cm", "4.1 cm", "5.6 cm", "7 mm", "15 mm", "2 cm", "6 cm")
PLACES = ("in the upper pole", "adjacent to the portal vein", "in the posterior segment", "near the hilum",
          "with surrounding edema", "with peripheral enhancement", "along the lateral wall", "at the apex",
          "with central necrosis", "abutting the aorta")
CONTEXTS = ("consistent with metastatic carcinoma", "suggesting an inflammatory process",
            "compatible with a benign cyst", "confirmed by biopsy as adenocarcinoma",
            "in a patient with chronic hepatitis", "after chemotherapy", "before surgical resection",
            "at six-month follow-up", "in a patient presenting with fever and pain",
            "with no evidence of lymph node involvement")
MARKERS = ("arrow", "arrowhead", "asterisk", "dashed circle", "white arrows", "black arrowheads")
NON_MEDICAL = (
    "Photograph of the research team at the annual meeting in Boston, standing in front of the venue.",
    "Map of the sampling sites along the river, with the survey route drawn as a dotted line.",
    "Bar chart comparing the number of downloads per month for the two software releases.",
    "Flow diagram of the questionnaire distribution and the number of responses received each week.",
)


def medical_caption(rng: random.Random) -> str:
    caption = (f"{rng.choice(MODALITIES)} of the {rng.choice(ORGANS)} shows a {rng.choice(SIZES)} "
               f"{rng.choice(FINDINGS)} {rng.choice(PLACES)} ({rng.choice(MARKERS)}), {rng.choice(CONTEXTS)}.")
    caption += f" A second {rng.choice(FINDINGS)} is seen in the {rng.choice(ORGANS)} {rng.choice(PLACES)}."
    return caption + f" Case {rng.randrange(10_000)}."


def draw_image(seed: int, size: tuple[int, int] = (384, 384)) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    top, bottom = rng.randrange(0, 120), rng.randrange(120, 256)
    # A vertical gradient from top to bottom grey level, different per seed.
    im = Image.linear_gradient("L").point(lambda v: top + (bottom - top) * v // 255).resize(size)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randrange(4, 9)):
        x0, y0 = rng.randrange(0, w * 3 // 4), rng.randrange(0, h * 3 // 4)
        box = [x0, y0, x0 + rng.randrange(w // 8, w // 2), y0 + rng.randrange(h // 8, h // 2)]
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(box, fill=rng.randrange(256))
    return im.convert("RGB")


def save_image(im: Image.Image, path: Path, fmt: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kwargs)
    return path


def write_corpus(root: Path, n: int, seed: int = 0, image_size: tuple[int, int] = (352, 352),
                 images_per_record: int = 1) -> Path:
    """n records with distinct JPEG images and medical captions; returns the JSONL file."""
    rng = random.Random(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = root / "records.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            names = []
            for k in range(images_per_record):
                name = f"images/PMC{i:07d}_F{k + 1}.jpg"
                save_image(draw_image(seed * 10_000_019 + i * 31 + k, image_size), root / name, "JPEG", quality=85)
                names.append(name)
            record = {"id": f"PMC{i:07d}", "image": names, "caption": medical_caption(rng),
                      "inline_mentions": [f"As shown in Figure {rng.randrange(1, 6)}, the findings were "
                                          f"{rng.choice(CONTEXTS)}."]}
            f.write(json.dumps(record) + "\n")
    return path
