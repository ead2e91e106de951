"""A small generated benchmark file in the released format, with generated PNG images (for tests and benchmarks).

It has the six benchmarks under the dataset names the real file uses, subsets for OmniMedVQA and MMMU, two to
five options, an item with two images, an answer of "?", options given as a Python literal string, and an open
question (which the harness leaves out, like the released scorer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DATASETS = {
    "VQA-RAD_test": "",
    "SLAKE_test": "",
    "PathVQA_test": "",
    "PMC-VQA_test": "",
    "OmniMedVQA": "X-Ray",
    "MMMU_Medical_Validation": "validation_Clinical_Medicine",
}
ORGANS = ["Lung", "Liver", "Heart", "Kidney", "Brain", "Spleen"]


def _image(path: Path, index: int) -> None:
    rng = np.random.default_rng(index)
    width, height = 96 + 8 * (index % 5), 80 + 6 * (index % 7)  # non-square: padding is exercised
    pixels = rng.integers(0, 255, (height, width), dtype=np.uint8)
    image = Image.fromarray(pixels).convert("RGB")
    ImageDraw.Draw(image).ellipse((10, 10, 10 + index % 40, 30 + index % 30), fill=(230, 225, 220))
    image.save(path)


def write_benchmark(folder: str | Path, per_benchmark: int = 3, name: str = "medical_multimodel_evaluation_data.json"
                    ) -> Path:
    """Write folder/name and folder/images/*.png; returns the JSON path."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, n_images = [], 0
    for d, (dataset, subset) in enumerate(DATASETS.items()):
        for i in range(per_benchmark):
            k = d * per_benchmark + i
            n_options = 2 + k % 4
            options = [ORGANS[(k + j) % len(ORGANS)] for j in range(n_options)]
            images = []
            for _ in range(2 if k % 7 == 3 else 1):
                images.append(f"images/{n_images:04d}.png")
                _image(folder / images[-1], n_images)
                n_images += 1
            rows.append({
                "question": f"Which organ is shown in this image? (case {k})",
                "options": repr(options) if k % 5 == 1 else options,
                "answer": "?" if k % 11 == 10 else options[k % n_options],
                "image": images,
                "dataset": dataset,
                "subset": subset,
            })
    rows.append({"question": "Describe the image.", "options": [], "answer": "a lung", "image": rows[0]["image"],
                 "dataset": "VQA-RAD_test", "subset": "", "question_type": "open"})
    path = folder / name
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    return path
