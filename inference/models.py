"""Installed models: converted folders (text GGUF + mmproj GGUF + manifest.json) under the models folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conversion.manifest import MANIFEST_NAME, Manifest


@dataclass(frozen=True)
class InstalledModel:
    folder: Path
    manifest: Manifest

    @property
    def label(self) -> str:
        m = self.manifest
        size = (m.text.size_bytes + m.mmproj.size_bytes) / 1e9
        return f"{m.name} · {m.text.quantization} · {size:.1f} GB"


def installed_models(root: Path) -> tuple[list[InstalledModel], list[str]]:
    """Models found under root, and a message for each folder that looks like a model but cannot be read."""
    models, problems = [], []
    if not root.is_dir():
        return models, problems
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}")):
        try:
            models.append(InstalledModel(manifest_path.parent, Manifest.read(manifest_path.parent)))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"{manifest_path.parent.name}: unreadable manifest ({exc})")
    return models, problems
