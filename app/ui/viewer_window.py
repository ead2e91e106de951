"""The viewer's window/level: the file's own, automatic, or a CT preset (in Hounsfield units only)."""

from __future__ import annotations

from dataclasses import replace

from app.studies.pixels import (
    COLOUR_WINDOW,
    Window,
    auto_window,
    default_window,
    is_colour,
    is_hounsfield,
    window_values,
)
from app.studies.presets import CT_PRESETS


class WindowLevel:
    """Part of `Viewer`: which window the grey levels are shown with."""

    def _default_window(self) -> Window | None:
        """The shown frame's own window (colour data: its colours as stored; None when its VOI LUT applies)."""
        if self._decoded is None:
            return None
        if is_colour(self.header):
            return COLOUR_WINDOW
        return default_window(self.header, window_values(self._decoded, self.header))

    def set_window(self, window: Window | None) -> None:
        """A window in modality units; None goes back to the file's own."""
        self.view = replace(self.view, window=window or self._default_window())
        self._show()

    def presets(self) -> list[str]:
        """HU presets only for CT with a rescale; other data get "from file", "auto" and invert."""
        return sorted(CT_PRESETS) if self.header is not None and is_hounsfield(self.header) else []

    def apply_preset(self, name: str) -> None:
        if name not in self.presets():
            raise ValueError(f"the preset {name!r} applies to CT in Hounsfield units only")
        self.set_window(Window(*CT_PRESETS[name]))

    def apply_preset_key(self, name: str) -> None:
        """A preset hotkey: applied to CT in HU; on other data it says why nothing happened."""
        if name in self.presets():
            self.apply_preset(name)
        elif self.header is not None:
            modality = self.header.get("Modality") or "not CT"
            self.message.emit(f"The {name} preset is for CT in Hounsfield units; this is {modality}.")

    def auto_window(self) -> None:
        if self._decoded is not None:
            self.set_window(auto_window(window_values(self._decoded, self.header)))
