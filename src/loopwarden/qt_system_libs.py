"""Which system package provides a Qt library that failed to load (data, and its lookup).

``pip install PySide6`` brings Qt itself, but Qt's GUI modules load a few
libraries from the operating system (EGL, OpenGL, xkbcommon, fontconfig...).
A bare server or a slim container image lacks them, and the import fails with
``ImportError: libEGL.so.1: cannot open shared object file``. This module turns
that message into advice: the library and the packages to install. Standard
library only, so any error path can use it.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = [
    "HEADLESS_PACKAGES",
    "QT_SYSTEM_LIBRARIES",
    "SystemLibrary",
    "describe_qt_import_error",
    "missing_library",
]


@dataclasses.dataclass(frozen=True)
class SystemLibrary:
    """A shared library Qt loads from the system, and the packages that provide it."""

    soname: str
    debian: str
    fedora: str


#: The libraries PySide6's QtGui/QtWidgets load from the system (``ldd libQt6Gui.so.6``
#: on Debian 12 and Ubuntu 24.04), with the Debian/Ubuntu and Fedora packages.
QT_SYSTEM_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libEGL.so.1", "libegl1", "libglvnd-egl"),
    SystemLibrary("libGL.so.1", "libgl1", "libglvnd-glx"),
    SystemLibrary("libGLX.so.0", "libglx0", "libglvnd-glx"),
    SystemLibrary("libOpenGL.so.0", "libopengl0", "libglvnd-opengl"),
    SystemLibrary("libGLdispatch.so.0", "libglvnd0", "libglvnd"),
    SystemLibrary("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon"),
    SystemLibrary("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLibrary("libfontconfig.so.1", "libfontconfig1", "fontconfig"),
    SystemLibrary("libfreetype.so.6", "libfreetype6", "freetype"),
    SystemLibrary("libdbus-1.so.3", "libdbus-1-3", "dbus-libs"),
    SystemLibrary("libglib-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libgthread-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libX11.so.6", "libx11-6", "libX11"),
    SystemLibrary("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
    SystemLibrary("libxcb.so.1", "libxcb1", "libxcb"),
    SystemLibrary("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLibrary("libpng16.so.16", "libpng16-16", "libpng"),
    SystemLibrary("libexpat.so.1", "libexpat1", "expat"),
)

#: What a headless machine needs for PySide6 offscreen (QT_QPA_PLATFORM=offscreen).
HEADLESS_PACKAGES: dict[str, tuple[str, ...]] = {
    "Debian/Ubuntu": ("libegl1", "libgl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3"),
    "Fedora": ("libglvnd-egl", "libglvnd-glx", "libxkbcommon", "fontconfig", "dbus-libs"),
}

# "libEGL.so.1: cannot open shared object file: No such file or directory", or
# "/some/dir/libEGL.so.1: file too short" when a broken copy is found first.
_SONAME = re.compile(r"(?:^|[/\s'\"])(lib[\w.+-]*?\.so(?:\.\d+)*)(?=:|\s|'|\"|$)")


def missing_library(message: str) -> str | None:
    """The shared library an ``ImportError`` message says could not be loaded, or None."""
    match = _SONAME.search(message)
    return match.group(1) if match else None


def _packages_for(soname: str) -> SystemLibrary | None:
    for library in QT_SYSTEM_LIBRARIES:
        if library.soname == soname:
            return library
    return None


def describe_qt_import_error(exc: ImportError) -> str | None:
    """Advice for an ImportError raised while importing Qt, or None if it is not about Qt.

    Returns:
        One paragraph naming what is missing and how to install it: the system
        library (with its Debian/Ubuntu and Fedora packages) when PySide6 is
        installed but a library of the operating system is not; the pip extra
        when PySide6 or qasync itself is missing.
    """
    message = str(exc)
    name = getattr(exc, "name", None) or ""
    if isinstance(exc, ModuleNotFoundError) and name.partition(".")[0] in ("PySide6", "qasync"):
        return (
            f"{name.partition('.')[0]} is not installed ({message}); "
            "install it with: pip install 'loopwarden[qt]'"
        )
    soname = missing_library(message)
    if soname is None:
        return None
    library = _packages_for(soname)
    if library is not None:
        install = (
            f"install it with `sudo apt-get install {library.debian}` (Debian/Ubuntu) or "
            f"`sudo dnf install {library.fedora}` (Fedora)"
        )
    else:
        install = "install the system package that provides it"
    everything = "; ".join(
        f"{distro}: {' '.join(pkgs)}" for distro, pkgs in HEADLESS_PACKAGES.items()
    )
    return (
        f"PySide6 is installed, but Qt cannot load the system library {soname} ({message}); "
        f"{install}. A headless machine needs these packages for Qt offscreen: {everything}"
    )
