"""The user's settings: one small JSON file in the data folder, written atomically. Qt-free."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from app.paths import data_dir
from inference.engine import EngineSettings
from inference.kv_states import DEFAULT_LIMIT_BYTES
from inference.sampling import OFFICIAL, SamplingSettings

SETTINGS_NAME = "settings.json"
MAX_RECENT = 10
MIN_ANSWER_TOKENS = 16


@dataclass
class Settings:
    threads: int | None = None  # None: the physical cores
    context_size: int | None = None  # None: the model family's default (inference/families.py)
    image_max_tokens: int | None = None  # Qwen2.5-VL's image-token budget; None: the model's training budget (192)
    gpu_layers: int = 0
    state_limit_bytes: int = DEFAULT_LIMIT_BYTES  # disk for saved image states (the engine's cache); 0: none saved
    keep_repacked_weights: bool = True  # the text model's weights kept as repacked for this CPU: fast loads
    temperature: float = OFFICIAL.temperature
    repetition_penalty: float = OFFICIAL.repetition_penalty
    max_new_tokens: int = OFFICIAL.max_new_tokens
    greedy: bool = False
    language: str = "en"  # suggested questions: "en" | "zh"
    show_identifiers: bool = False  # patient identifiers on screen, in stored conversations and in exports
    theme: str = "light"  # "light" | "dark"
    enter_sends: bool = True  # in the question box: Enter sends, Shift+Enter a new line (False: Ctrl+Enter sends)
    acknowledged: str | None = None  # when the user acknowledged the intended use (UTC ISO time)
    recent: list[str] = field(default_factory=list)  # recently opened studies (paths)

    @classmethod
    def load(cls, folder: Path | None = None) -> Settings:
        """The saved settings; defaults for what is missing or unreadable (a broken file is not fatal)."""
        path = (folder or data_dir()) / SETTINGS_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        types = {f.name: str(f.type) for f in fields(cls)}
        settings = cls()
        for key, value in data.items() if isinstance(data, dict) else ():
            if key in types and _compatible(types[key], value):
                setattr(settings, key, value)
        return settings

    def save(self, folder: Path | None = None) -> Path:
        folder = folder or data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SETTINGS_NAME
        partial = path.with_name(path.name + ".part")
        partial.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
        return path

    def acknowledge(self) -> None:
        self.acknowledged = datetime.now(UTC).isoformat(timespec="seconds")

    def add_recent(self, path: str) -> None:
        self.recent = [path] + [p for p in self.recent if p != path][: MAX_RECENT - 1]

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(n_ctx=self.context_size, n_threads=self.threads, n_gpu_layers=self.gpu_layers,
                              image_max_tokens=self.image_max_tokens, keep_repacked_weights=self.keep_repacked_weights)

    def sampling(self) -> SamplingSettings:
        if self.greedy:
            return SamplingSettings.greedy_decoding(self.max_new_tokens)
        return SamplingSettings(temperature=self.temperature, repetition_penalty=self.repetition_penalty,
                                max_new_tokens=self.max_new_tokens)


def longest_answer_bound(context: int, image_tokens: int) -> int:
    """The longest answer that fits the context next to a question's image: the context less the image's tokens
    (a conversation with more images leaves less; the engine then ends the answer where the context ends)."""
    return max(MIN_ANSWER_TOKENS, context - image_tokens)


def _compatible(annotation: str, value) -> bool:
    """A saved value is used only if it has the setting's type (a hand-edited file cannot break the app)."""
    if value is None:
        return "None" in annotation
    if isinstance(value, bool):
        return annotation.startswith("bool")
    kinds = {"int": int, "float": (int, float), "str": str, "list": list}
    return any(isinstance(value, kind) for name, kind in kinds.items() if annotation.startswith(name)
               or f"{name} |" in annotation)
