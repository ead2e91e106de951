"""Removing the engine's saved conversation states (inference/kv_states.py): every one (Settings › Clear), or those
that hold a deleted conversation's images.

Either is one `StatesClearing`, run by the engine runner (`EngineRunner.clear_saved_states`) on its engine client
thread when the engine is free, after ending the engine: the engine writes a conversation's state just after its
answer, so a state being written while they are removed would otherwise survive them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.paths import STATES_FOLDER, models_dir, states_dir  # noqa: F401 (STATES_FOLDER: here too)
from app.settings import Settings
from inference.engine import PreparedImage
from inference.families import family
from inference.kv_states import clear_states, remove_states_with_images
from inference.store.models import installed_models


class StatesClearing(QObject):
    """Saved states removed (overwritten, then unlinked): every one, or those holding one of `images` (PNGs as the
    conversation stored them), when the engine is not writing one."""

    ended = Signal(int)  # how many files were removed

    def __init__(self, folder: Path, images: list[bytes] | None = None):
        super().__init__()
        self.folder = folder
        self.images = None if images is None else list(images)  # None: every state

    def include(self, images: list[bytes] | None) -> None:
        """Asked for again before it ran: it removes those states too (None: every state)."""
        if self.images is not None:
            self.images = None if images is None else self.images + list(images)

    def run(self) -> int:
        """On the engine client thread, with the engine ended."""
        if self.images is None:
            return clear_states(self.folder)
        return forget_saved_states(self.images, self.folder)


def forget_saved_states(pngs: list[bytes], folder: Path | None = None) -> int:
    """Remove the engine's saved states that hold one of these images. The engine knows an image as the model saw
    it (prepared for the model by its family), so each installed model's preparation is tried, with the model's own
    image-token budget and the one in the settings."""
    budgets = {None, Settings.load().image_max_tokens}
    shas = set()
    for model in installed_models(models_dir())[0]:
        for budget in budgets if family(model.manifest.family).image_budget_setting else {None}:
            shas |= {PreparedImage.for_model(png, model.manifest, budget).sha256 for png in pngs}
    return remove_states_with_images(folder if folder is not None else states_dir(), shas)
