"""Autosave of the Label dock: labels written one second after the last edit, restore offered.

A mixin of :class:`~napari_atombench.widgets.labeling.LabelingWidget`; where the file
goes is :func:`napari_atombench.core.autosave.autosave_path`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from napari.layers import Points
from napari.utils.notifications import show_info, show_warning

from ..core.autosave import autosave_path
from ..core.io import read_positions, write_positions
from ._state import file_features
from ._worker import set_message


class AutosaveMixin:
    """Uses the dock's ``image_layer``, ``labels_layer()``, ``_pending``, ``_autosave_timer``,
    ``_restore_candidate``, ``_restore_button``, ``_offered`` and ``_status``."""

    def autosave_path(self) -> Path | None:
        """Where the chosen image's labels are autosaved."""
        image = self.image_layer
        if image is None:
            return None
        return autosave_path(image.metadata.get("source_path") or image.source.path, image.name, np.asarray(image.data))

    def _schedule_autosave(self, layer: Points):
        image = self.image_layer
        if image is None or layer is not self.labels_layer():
            return
        self._pending["job"] = (layer, self.autosave_path(), self._pixel_size_A())
        self._autosave_timer.start()

    def autosave_now(self) -> Path | None:
        """Write the pending autosave immediately (the timer calls this)."""
        self._autosave_timer.stop()
        job = self._pending.pop("job", None)
        if job is None:
            return None
        path = job[1]
        if self._restore_candidate is not None and Path(self._restore_candidate) == path and path.exists():
            # the user has not restored the older autosave: keep it instead of overwriting it
            backup = path.with_name(path.name[: -len(".csv")] + ".previous.csv")
            try:
                path.replace(backup)
                show_info(f"kept the earlier autosave as {backup}")
            except OSError as exc:
                show_warning(f"could not keep the earlier autosave {path}: {exc}")
                return None
        written = write_autosave(job)
        if written is not None:
            self._restore_candidate = None
            self._restore_button.enabled = False
        return written

    def _image_changed(self):
        """Show the image's pixel size; offer to restore an autosave that differs from its labels."""
        self._show_pixel_size()
        self._show_separation()
        self._restore_candidate = None
        self._restore_button.enabled = False
        path = self.autosave_path()
        if path is None or not path.exists():
            return
        try:
            table = read_positions(path)
        except (OSError, ValueError):
            return
        layer = self.labels_layer()
        current = np.zeros((0, 2)) if layer is None else np.asarray(layer.data)
        if len(table) == len(current) and np.allclose(table.positions_rc, current, atol=1e-4):
            return
        if not len(table):
            return
        self._restore_candidate = path
        self._restore_button.enabled = True
        when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        message = (f"Autosaved labels of {self._image_combo.value} ({len(table)} points, {when}) differ "
                   "from the open ones: 'Restore autosave' in Label atom columns brings them back")
        set_message(self._status, message)
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._offered:  # one notification per autosave version
            self._offered.add(key)
            show_info(message)

    def restore_autosave(self) -> Points | None:
        """Load the autosaved labels of the chosen image (undo-able)."""
        path = self._restore_candidate or self.autosave_path()
        if path is None or not Path(path).exists():
            show_info("no autosave for this image")
            return None
        layer = self.load_labels(str(path))
        if layer is not None:
            self._status.value = f"restored {len(layer.data)} autosaved points"
        return layer


def write_autosave(job) -> Path | None:
    """Write one autosave job ``(layer, path, pixel_size_A)``; never raises."""
    if job is None:
        return None
    layer, path, pixel_size_A = job
    try:
        return write_positions(path, layer.data, pixel_size_A, features=file_features(layer.features, len(layer.data)))
    except (OSError, ValueError) as exc:
        show_warning(f"Autosave to {path} failed: {exc}")
        return None
