"""Moved to :mod:`napari_atombench.widgets.session` (it drives docks; ``_napari`` holds manifest adapters)."""

from ..widgets.session import DEFAULT_MODEL, open_session, screenshot_display_or_reexec

__all__ = ["DEFAULT_MODEL", "open_session", "screenshot_display_or_reexec"]
