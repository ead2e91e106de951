"""Where the app keeps its data (models, conversations, settings): the platform's user data folder.

The app creates it open to its owner only and keeps it so (app/privacy.py)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "HuatuoVision"
STATES_FOLDER = "engine-states"  # saved conversation states (inference/kv_states.py)


def data_dir() -> Path:
    override = os.environ.get("HUATUO_DATA_DIR")  # tests and portable installs
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


def states_dir() -> Path:
    """Where the engine saves processed conversation prefixes (derived from patient images: private, bounded)."""
    return data_dir() / STATES_FOLDER
