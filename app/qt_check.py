"""The system libraries Qt's X11 (xcb) platform needs, checked before the QApplication is created.

Without one of them Qt aborts with "xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin",
whichever library is actually missing; this check names the missing ones and the packages that provide them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# What PySide6's plugins/platforms/libqxcb.so and lib/libQt6XcbQpa.so.6 load from the system (their ELF NEEDED
# entries less Qt's own libraries and the C/C++ runtime), and what Qt's GUI library needs besides (EGL, fontconfig,
# D-Bus), with the Debian/Ubuntu package of each.
# tests/app/test_qt_check.py compares this with the installed plugin, and .ci/run installs these packages.
XCB_LIBRARIES = {
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def uses_xcb(environ: dict | None = None, platform: str = sys.platform) -> bool:
    """Whether Qt will load its xcb platform: asked for by QT_QPA_PLATFORM, or Linux's default outside Wayland."""
    environ = os.environ if environ is None else environ
    if platform != "linux":
        return False
    requested = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if requested:
        return requested == "xcb"
    return not (environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland")


def missing(libraries) -> list[str]:
    """Those of the libraries (sonames) the dynamic loader cannot load, nor found beside the app's own Qt."""
    return [name for name in libraries if not _loadable(name)]


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)  # the loader's own search: what Qt will get
        return True
    except OSError:
        return any((folder / soname).is_file() for folder in _bundled_folders())


def _bundled_folders() -> list[Path]:
    """Where an installed (frozen) app or the PySide6 wheel carries libraries of its own."""
    folders = []
    if getattr(sys, "frozen", False):
        folders.append(Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)))
    try:
        import PySide6

        folders.append(Path(PySide6.__file__).parent / "Qt" / "lib")
    except ImportError:
        pass
    return folders


def explain(names: list[str]) -> str:
    packages = sorted({XCB_LIBRARIES.get(name, "") for name in names} - {""})
    lines = ["Qt's X11 (xcb) platform needs system libraries that are missing here:"]
    lines += [f"  {name}  (Debian/Ubuntu package {XCB_LIBRARIES.get(name, 'unknown')})" for name in names]
    if packages:
        lines.append(f"Install them with:  sudo apt-get install {' '.join(packages)}")
    lines.append("(Other distributions name these packages differently; the library names above are the same.)")
    return "\n".join(lines)


def xcb_problem(environ: dict | None = None) -> str:
    """What to tell the user before Qt would abort for want of a library ("" when nothing is missing)."""
    if not uses_xcb(environ):
        return ""
    names = missing(XCB_LIBRARIES)
    return explain(names) if names else ""
