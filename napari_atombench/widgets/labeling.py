"""Dock widget "Label atom columns": seed, snap, refine, review, save - never lose a label.

Thin by design: every number comes from :mod:`napari_atombench.core.peaks`,
:mod:`napari_atombench.core.refine` and :mod:`napari_atombench.core.io`; this
module only reads and writes layers.

* **Seed** finds column seeds in the chosen image and adds them to the
  ``<image> labels`` Points layer (created when missing; existing points are
  kept, seeds closer than half a separation to one are skipped).
* **Snap new points to peak**: a point added by hand is moved onto the
  column under the click.
* **Refine** runs centre of mass, Gaussian, or Gaussian with overlaps in a
  ``thread_worker`` with a napari progress bar and a Cancel button, then
  writes positions and per-point features (amplitude, sigma_px, background,
  uncertainty_px, status) in place. napari 0.9 Points layers have no undo for
  programmatic edits, so the widget keeps its own: **Undo** restores the
  positions and features before the last edit - seed, refine, load, restore,
  or a hand add, move or delete - in order.
* **Select doubtful** selects points that fell back, were rejected or have a
  low amplitude, for review; **Colour by** shows the fit status or the
  position uncertainty.
* **Save / Load** labels as CSV (:func:`~napari_atombench.core.io.write_positions`).
* **Autosave**: one second after the last edit the labels are written
  atomically to a sidecar file (see :mod:`napari_atombench.core.autosave`);
  when an image whose autosave differs from its labels is chosen, the widget
  offers to restore it.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd
from magicgui.widgets import Container
from qtpy.QtCore import QTimer

from napari.layers import Image, Points
from napari.viewer import Viewer
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.layers import (
    labels_layer_kwargs,
    layer_pixel_size_A,
    layer_role,
    set_layer_pixel_size_A,
    unproxied,
)
from ..core.io import read_positions, write_positions
from ..core.peaks import estimate_separation, find_seeds, snap_to_peak
from ..core.refine import (
    STATUS_FELL_BACK,
    STATUS_REJECTED,
    refine_positions,
)
from ._labeling_autosave import AutosaveMixin, write_autosave
from ._labeling_ui import METHODS, build_controls
from ._scroll import scroll_body
from ._state import (  # noqa: F401 - STATUS_* and FIT_FEATURES: public names of this dock
    FIT_FEATURES,
    STATUS_COLOURS,
    STATUS_UNREFINED,
    EditHistory,
    doubtful_mask,
    file_features as _file_features,
    refine_hint,
    refine_summary,
    snap_radius_px,
)
from ._worker import set_message, start_job

AUTOSAVE_DELAY_MS = 1000


#: Points data events sent BEFORE a hand edit: the moment to keep the state for Undo
_PRE_EDIT = ("adding", "removing", "changing")


class LabelingWidget(AutosaveMixin, Container):
    """Label atom columns: seed, snap, refine, review, save, autosave."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__(labels=True)
        self.viewer = unproxied(napari_viewer)  # layers compared as themselves (see unproxied)
        build_controls(self)
        scroll_body(self)  # beside the Compare dock on a 1000 px tall screen

        self.history = EditHistory()
        self._separation_cache: tuple[object, bool, float] | None = None  # (image data, dark, separation)
        self._seeds_cache: tuple[object, float, bool, np.ndarray] | None = None  # for the snap radius
        self._watched: weakref.WeakSet = weakref.WeakSet()
        self._editing = False  # guards our own writes against the snap handler
        self.worker = None
        self.job = None
        # the timer dies with the widget; an edit still pending then is written at once
        self._autosave_timer = QTimer(self.native)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._pending: dict = {}
        pending = self._pending
        self.native.destroyed.connect(lambda *_: write_autosave(pending.pop("job", None)))
        self._restore_candidate: Path | None = None
        self._offered: set[tuple[str, int]] = set()

        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()

    # ------------------------------------------------------------ layers

    def _image_choices(self, _widget=None):
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image) and layer.data.ndim == 2]

    def _layers_changed(self, event=None):
        self._image_combo.reset_choices()
        for layer in self.viewer.layers:
            if isinstance(layer, Points) and layer_role(layer) == "labels":
                self._watch(layer)
        self._image_changed()

    @property
    def image_layer(self) -> Image | None:
        name = self._image_combo.value
        if name is None or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def labels_layer(self, create: bool = False) -> Points | None:
        """The ``<image> labels`` Points layer of the chosen image."""
        image = self.image_layer
        if image is None:
            return None
        name = f"{image.name} labels"
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        for layer in self.viewer.layers:  # e.g. <image>_labels.csv opened with File > Open
            if isinstance(layer, Points) and layer_role(layer) == "labels" and (
                    layer.metadata.get("image") == image.name or layer.name == f"{image.name}_labels"):
                self._watch(layer)
                return layer
        if not create:
            return None
        empty = np.zeros((0, 2))
        kwargs = labels_layer_kwargs(name, empty, pixel_size_A=image.metadata.get("pixel_size_A"),
                                     metadata={"image": image.name, "role": "labels"})
        try:
            kwargs["size"] = max(2.0, 0.25 * self.separation_px())
        except ValueError:
            pass  # no periodic structure: keep the default marker size
        layer = self.viewer.add_points(empty, **kwargs)
        self._watch(layer)
        return layer

    def _watch(self, layer: Points):
        if layer in self._watched:
            return
        self._watched.add(layer)
        # bound methods: napari keeps weak references, so a closed widget is not called
        layer.events.data.connect(self._on_data)
        layer.events.features.connect(self._on_features)

    def _image_data(self) -> np.ndarray:
        image = self.image_layer
        if image is None:
            raise ValueError("choose an image first")
        return np.asarray(image.data)

    def separation_px(self) -> float:
        """Nearest-column distance: the user's, else estimated from the chosen image (cached)."""
        if self._separation.value > 0:
            return float(self._separation.value)
        image = self.image_layer
        if image is None:
            raise ValueError("choose an image first")
        dark = bool(self._dark.value)
        cache = self._separation_cache
        if cache is None or cache[0] is not image.data or cache[1] != dark:
            self._separation_cache = (image.data, dark, estimate_separation(np.asarray(image.data), dark=dark))
        self._show_separation()
        return self._separation_cache[2]

    def _show_separation(self) -> None:
        if self._separation.value > 0:
            text = f"separation {self._separation.value:.1f} px (yours)"
        elif self._separation_cache is not None and self.image_layer is not None \
                and self._separation_cache[0] is self.image_layer.data:
            text = f"separation {self._separation_cache[2]:.1f} px (estimated; type another above to override)"
        else:
            text = "separation: estimated when you seed or snap"
        set_message(self._separation_info, text)

    def _snap_radius(self, click_rc) -> float:
        """0.4 separation, bounded by half the local column distance (never onto a neighbour)."""
        separation = self.separation_px()
        image = self.image_layer
        key = (image.data, separation, bool(self._dark.value))
        if self._seeds_cache is None or self._seeds_cache[:3] != key:
            seeds = find_seeds(np.asarray(image.data), separation, threshold=self._threshold.value,
                               dark=self._dark.value)
            self._seeds_cache = (*key, seeds)
        return snap_radius_px(click_rc, self._seeds_cache[3], separation)

    # ------------------------------------------------------------ pixel size

    def _show_pixel_size(self) -> None:
        with self._pixel_size.changed.blocked():
            self._pixel_size.value = layer_pixel_size_A(self.image_layer) or 0.0

    def _pixel_size_edited(self, value: float) -> None:
        set_layer_pixel_size_A(self.image_layer, value)
        set_layer_pixel_size_A(self.labels_layer(), value)

    # ------------------------------------------------------------ undo

    def _push_undo(self, layer: Points):
        self.history.push(layer.name, layer.data, layer.features)
        self._undo_button.enabled = True

    def undo(self):
        """Restore the positions and features before the last edit (seed, refine, load, or by hand)."""
        if not len(self.history):
            show_info("nothing to undo")
            return
        name, data, features = self.history.pop()
        self._undo_button.enabled = bool(len(self.history))
        if name not in self.viewer.layers:
            show_warning(f"cannot undo: layer {name!r} is gone")
            return
        layer = self.viewer.layers[name]
        self._set_points(layer, data, features)
        self._status.value = f"undone: {len(data)} points"

    def _set_points(self, layer: Points, data: np.ndarray, features: pd.DataFrame | None):
        self._editing = True
        try:
            layer.selected_data = set()
            layer.data = np.asarray(data, dtype=float).reshape(-1, 2)
            if features is not None and len(features.columns) and len(features) == len(layer.data):
                layer.features = features.reset_index(drop=True)
            self._ensure_feature_columns(layer)
        finally:
            self._editing = False
        self._apply_colours(layer)
        self._schedule_autosave(layer)

    def _ensure_feature_columns(self, layer: Points):
        features = layer.features.copy()
        changed = False
        if "status" not in features.columns:
            features["status"] = STATUS_UNREFINED
            changed = True
        for column in FIT_FEATURES:
            if column not in features.columns:
                features[column] = np.nan
                changed = True
        if features["status"].dtype.name == "category":
            features["status"] = features["status"].astype(object)
            changed = True
        if changed:
            layer.features = features
        defaults = {column: np.nan for column in FIT_FEATURES}
        defaults["status"] = STATUS_UNREFINED
        if "reason" in features.columns:
            defaults["reason"] = ""  # a point added by hand has not been refined, so nothing failed
        current = layer.feature_defaults
        for column in current.columns:
            if column not in defaults:
                defaults[column] = current[column].iloc[0] if len(current) else None
        layer.feature_defaults = defaults

    # ------------------------------------------------------------ seed and snap

    def seed(self) -> Points | None:
        """Add column seeds of the chosen image to its labels layer."""
        try:
            image = self._image_data()
            separation = self.separation_px()
            seeds = find_seeds(image, separation, threshold=self._threshold.value, dark=self._dark.value)
        except ValueError as exc:
            show_error(f"Seed: {exc}")
            return None
        layer = self.labels_layer(create=True)
        existing = np.asarray(layer.data)
        if len(existing) and len(seeds):
            from scipy.spatial import cKDTree

            distance, _ = cKDTree(existing).query(seeds)
            seeds = seeds[distance > 0.5 * separation]
        self._push_undo(layer)
        features = layer.features.reset_index(drop=True)
        new_rows = pd.DataFrame({"status": [STATUS_UNREFINED] * len(seeds)})
        merged = pd.concat([features, new_rows], ignore_index=True) if len(features.columns) else None
        self._set_points(layer, np.vstack([existing.reshape(-1, 2), seeds]), merged)
        self._status.value = f"{len(seeds)} seeds added ({len(layer.data)} points, separation {separation:.1f} px)"
        return layer

    def _on_features(self, event):
        self._schedule_autosave(event.source)

    def _on_data(self, event):
        layer = event.source
        action = str(getattr(event, "action", ""))
        if action in _PRE_EDIT and not self._editing:
            self._push_undo(layer)  # a hand edit: keep the state before it
            return
        if action == "added" and not self._editing and self._snap.value:
            self._snap_points(layer, event.data_indices)
        if action in ("added", "removed", "changed"):
            self._schedule_autosave(layer)

    def _snap_points(self, layer: Points, indices):
        image_layer = self.image_layer
        if image_layer is None or layer is not self.labels_layer() or not len(layer.data):
            return
        n = len(layer.data)
        idx = np.unique(np.asarray(indices, dtype=int) % n) if len(indices) else np.zeros(0, int)
        if not idx.size:
            return
        data = np.array(layer.data, copy=True)
        try:
            for i in idx:
                data[i] = snap_to_peak(np.asarray(image_layer.data), data[i], self._snap_radius(data[i]),
                                       dark=self._dark.value)
        except ValueError as exc:
            show_warning(f"Snap: {exc}")
            return
        self._editing = True
        try:
            selected = set(layer.selected_data)
            layer.data = data
            layer.selected_data = selected
        finally:
            self._editing = False

    # ------------------------------------------------------------ refine

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def refine(self, method: str | None = None):
        """Refine the labels in a worker thread; returns the worker (or None)."""

        if self.busy:
            show_warning("a refinement is already running")
            return None
        layer = self.labels_layer()
        if layer is None or not len(layer.data):
            show_error("Refine: no labels to refine; seed or click points first")
            return None
        try:
            image = self._image_data()
        except ValueError as exc:
            show_error(f"Refine: {exc}")
            return None
        method = method or METHODS[self._method.value]
        positions = np.array(layer.data, copy=True)
        self._refine_button.enabled = False
        self._cancel_button.enabled = True
        self._status.value = "refining..."
        self.job = start_job(refine_positions, image, positions, method, dark=self._dark.value,
                             desc=f"Refining {len(positions)} columns", bar=self._progress,
                             on_returned=lambda result: self._refined(layer, positions, result),
                             on_error=self._refine_failed, on_cancelled=self._refine_cancelled,
                             on_finished=self._worker_finished)
        self.worker = self.job.worker
        return self.worker

    def cancel(self):
        """Ask the running refinement to stop after its current chunk."""
        if self.job is not None:
            self.job.cancel()

    def _refined(self, layer: Points, positions: np.ndarray, result):
        if layer not in self.viewer.layers:
            show_warning("the labels layer was removed during refinement; result discarded")
            return
        if len(layer.data) != len(positions) or not np.array_equal(layer.data, positions):
            show_warning("labels changed during refinement; result discarded, refine again")
            return
        self._push_undo(layer)
        features = layer.features.reset_index(drop=True).copy()
        fit = result.features()
        for column in fit.columns:
            features[column] = fit[column].to_numpy()
        self._set_points(layer, result.positions_rc, features)
        layer.metadata["refinement"] = dict(result.parameters, method=result.method)
        counts = result.counts()
        hint = refine_hint(result.method, result.status, result.reason)
        set_message(self._status, " | ".join(filter(None, [hint, refine_summary(result.status, result.reason)])))
        if counts[STATUS_FELL_BACK] or counts[STATUS_REJECTED]:
            show_info(f"Refine: {counts[STATUS_FELL_BACK]} fell back, {counts[STATUS_REJECTED]} rejected; "
                      "'Select doubtful' selects them" + (f". {hint}" if hint else ""))

    def _refine_failed(self, exc: Exception):
        set_message(self._status, f"refinement failed: {exc}")
        show_error(f"Refine: {exc}")

    def _refine_cancelled(self):
        self._status.value = "refinement cancelled; labels unchanged"
        show_info("Refine: cancelled")

    def _worker_finished(self):
        self.worker = None
        self.job = None
        self._refine_button.enabled = True
        self._cancel_button.enabled = False

    # ------------------------------------------------------------ review

    def doubtful_mask(self, layer: Points | None = None) -> np.ndarray:
        """Points that fell back, were rejected, or have a low amplitude (:func:`._state.doubtful_mask`)."""
        layer = layer or self.labels_layer()
        if layer is None:
            return np.zeros(0, dtype=bool)
        return doubtful_mask(layer.features, len(layer.data), self._low_amplitude.value)

    def select_doubtful(self) -> int:
        """Select the doubtful points of the labels layer for review; returns how many."""
        layer = self.labels_layer()
        if layer is None:
            show_info("no labels layer")
            return 0
        mask = self.doubtful_mask(layer)
        self.viewer.layers.selection.active = layer
        layer.mode = "select"
        layer.selected_data = set(np.flatnonzero(mask).tolist())
        self._status.value = f"{int(mask.sum())} doubtful point(s) selected"
        return int(mask.sum())

    def _apply_colours(self, layer: Points | None = None):
        layer = layer or self.labels_layer()
        if layer is None or not len(layer.data):
            return
        mode = self._colour_by.value
        features = layer.features
        if mode == "status" and "status" in features.columns:
            from napari.utils.colormaps.standardize_color import transform_color

            status = features["status"].astype(str).to_numpy()
            colours = np.array([transform_color(STATUS_COLOURS.get(s, STATUS_COLOURS[STATUS_UNREFINED]))[0] for s in status])
            layer.face_color = colours
            layer.current_face_color = STATUS_COLOURS[STATUS_UNREFINED]
        elif mode == "uncertainty_px" and "uncertainty_px" in features.columns:
            values = pd.to_numeric(features["uncertainty_px"], errors="coerce")
            if values.notna().any():
                layer.face_colormap = "viridis"
                layer.face_color = "uncertainty_px"
        else:
            layer.face_color = STATUS_COLOURS[STATUS_UNREFINED]

    # ------------------------------------------------------------ files

    def _pixel_size_A(self):
        return layer_pixel_size_A(self.image_layer)

    def save_labels(self, path: str | None = None) -> Path | None:
        """Write the labels (and their features) to a CSV file."""
        layer = self.labels_layer()
        if layer is None:
            show_error("Save: no labels layer")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(None, "Save labels", f"{layer.name}.csv", "CSV (*.csv)")
            if not path:
                return None
        try:
            written = write_positions(path, layer.data, self._pixel_size_A(), features=_file_features(layer.features, len(layer.data)))
        except (OSError, ValueError) as exc:
            show_error(f"Save: {exc}")
            return None
        self._status.value = f"saved {len(layer.data)} points to {Path(written).name}"
        return written

    def load_labels(self, path: str | None = None) -> Points | None:
        """Replace the labels of the chosen image by the points of a CSV file (undo-able)."""
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(None, "Load labels", "", "CSV (*.csv)")
            if not path:
                return None
        try:
            table = read_positions(path)
        except (OSError, ValueError) as exc:
            show_error(f"Load: {exc}")
            return None
        layer = self.labels_layer(create=True)
        self._push_undo(layer)
        self._set_points(layer, table.positions_rc, table.features)
        self._status.value = f"loaded {len(table)} points from {Path(path).name}"
        return layer
