# QtGui as PyInstaller's own hook collects it, less the plugins this app never loads. Dropping them here,
# before PyInstaller follows their dependencies, also keeps out what only they need (the GTK theme alone
# brings GTK, Pango, Cairo and GLib from the build machine).
from PyInstaller.utils.hooks.qt import add_qt6_dependencies

# Plugin folders for embedded devices (EGLFS, evdev input, TUIO over the network), Wayland's OpenGL buffer
# integrations (the app paints with the raster engine; xdg-shell and decorations stay) and SVG icons (none used).
UNUSED_PLUGIN_DIRS = {"egldeviceintegrations", "generic", "wayland-graphics-integration-client",
                      "wayland-graphics-integration-server", "iconengines"}
# Platform plugins for kiosks and tests other than offscreen; the GTK theme (the app has its own theme); image
# formats Qt never reads here (files are opened with Pillow and pydicom; Qt only shows PNG and JPEG).
UNUSED_PLUGIN_NAMES = ("linuxfb", "eglfs", "minimal", "vnc", "vkkhrdisplay", "qgtk3",
                       "qsvg", "qtiff", "qwebp", "qtga", "qwbmp", "qicns", "qpdf")


def _unused(dest_dir: str, src: str) -> bool:
    parts = dest_dir.replace("\\", "/").split("/")
    if "plugins" not in parts:
        return False
    kind = parts[parts.index("plugins") + 1] if parts.index("plugins") + 1 < len(parts) else ""
    name = src.replace("\\", "/").rsplit("/", 1)[-1]
    return kind in UNUSED_PLUGIN_DIRS or any(word in name for word in UNUSED_PLUGIN_NAMES)


hiddenimports, binaries, datas = add_qt6_dependencies(__file__)
binaries = [(src, dest) for src, dest in binaries if not _unused(dest, src)]
