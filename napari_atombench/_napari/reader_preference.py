"""Make File ▸ Open and drag-and-drop use our reader for microscope images.

npe2 manifests have no reader priority: when two plugins accept ``*.tif`` napari
asks the user, and napari's builtin reader drops the pixel size. napari's
documented way to choose is the setting ``plugins.extension2reader`` (pattern ->
plugin), the same one its "remember this choice" box and Preferences ▸ Plugins
write. We fill it for our image patterns when the plugin activates, never
replacing a choice the user already made. ``*.csv`` stays unassigned: most CSV
files are not position tables, and our reader declines those.
"""

from __future__ import annotations

from ..core.io import IMAGE_SUFFIXES

PLUGIN_NAME = "napari-atombench"
#: File patterns we ask napari to open with our reader by default.
PREFERRED_PATTERNS = tuple(f"*{suffix}" for suffix in IMAGE_SUFFIXES)


def prefer_our_reader(_context=None) -> list[str]:
    """Make our reader napari's default for our image patterns that have no preference yet.

    Parameters
    ----------
    _context : npe2.PluginContext, optional
        Passed by npe2 when it calls this as the manifest's ``on_activate``.

    Returns
    -------
    list of str
        The patterns newly assigned to our reader.
    """
    from napari.settings import get_settings

    settings = get_settings().plugins
    current = dict(settings.extension2reader)
    added = [pattern for pattern in PREFERRED_PATTERNS if pattern not in current]
    if added:
        settings.extension2reader = {**current, **{pattern: PLUGIN_NAME for pattern in added}}
    return added
