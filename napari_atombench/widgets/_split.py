""""Split into classes": one set of controls shared by the Label, Run and Adapt docks.

Sorts a Points layer's columns into classes (sublattices, species) with
:func:`~napari_atombench.core.classify.classify_columns` and adds one layer per
class, ``<layer> class k``. With a reference labels layer chosen, it is split
into the same number of classes and each prediction class is scored against its
labels class in the Compare dock (one row per class, through ``truth_layer``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Points
from napari.utils.notifications import show_error, show_warning

from .._napari.layers import points_size_px
from ..core.classify import FEATURES, classify_columns
from ._worker import message_label, set_message

COMPARE_WIDGET = ("napari-atombench", "Compare to labels")
NONE = "(none)"
#: one colour per class (ring markers)
CLASS_COLOURS = ("#ff4fd8", "#7dff4f", "#ffa64f", "#4fa3ff", "#f5f54f")


def show_in_compare(viewer, layers) -> object | None:
    """Dock the Compare widget (once) and score ``layers`` as its predictions; returns the dock."""
    try:
        _, compare = viewer.window.add_plugin_dock_widget(*COMPARE_WIDGET)
    except Exception as exc:  # the dock is optional: the layers are already added
        show_warning(f"Compare dock unavailable: {exc}")
        return None
    # by name through the Compare dock's own viewer: each dock may see the layers
    # through its own proxy objects, and the dock tells layers apart by identity
    names = {layer.name for layer in layers}
    compare.set_predictions([layer for layer in compare.viewer.layers if layer.name in names])
    compare.update_now()
    return compare


class SplitControls(Container):
    """Controls that split a Points layer into per-class layers.

    Parameters
    ----------
    viewer : napari.Viewer
    image_layer : callable
        Returns the image layer the columns are measured in (the host dock's choice).
    """

    def __init__(self, viewer, image_layer: Callable[[], object]):
        super().__init__(labels=True)
        self.viewer = viewer
        self._image_layer = image_layer
        self.layer = ComboBox(label="split points", choices=self._points)
        self.reference = ComboBox(label="score against", choices=self._reference_choices)
        self.n_classes = ComboBox(label="classes", choices=["auto", "1", "2", "3", "4", "5"], value="auto")
        self.feature = ComboBox(label="feature", choices=list(FEATURES), value="integrated_intensity")
        self.button = PushButton(text="Split into classes")
        self.status = Label(value="")
        message_label(self.status)
        self.extend([self.layer, self.reference, self.n_classes, self.feature, self.button, self.status])
        self.button.changed.connect(self.split)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.compare_widget = None

    def _points(self, _=None):
        return [layer for layer in self.viewer.layers if isinstance(layer, Points)]

    def _reference_choices(self, _=None):
        return [(NONE, None)] + [(layer.name, layer) for layer in self._points()]

    def refresh(self, _=None) -> None:
        self.layer.reset_choices()
        self.reference.reset_choices()

    def split(self, _=None) -> list:
        """Split the chosen layer (and the reference into as many classes); returns the added layers."""
        layer, reference, image_layer = self.layer.value, self.reference.value, self._image_layer()
        if layer is None or image_layer is None:
            show_warning("Split into classes: choose an image and a Points layer")
            return []
        n = self.n_classes.value
        image = np.asarray(image_layer.data, dtype=np.float32)
        try:
            result = classify_columns(image, np.asarray(layer.data)[:, -2:], n if n == "auto" else int(n),
                                      self.feature.value)
            ref = None
            if reference is not None and reference is not layer:
                ref = classify_columns(image, np.asarray(reference.data)[:, -2:], result.n_classes, self.feature.value)
        except ValueError as exc:
            show_error(f"Split {layer.name}: {exc}")
            return []
        added = self._add_classes(layer, result, None if ref is None else reference.name)
        if ref is not None:
            self._add_classes(reference, ref, None)
            self.compare_widget = show_in_compare(self.viewer, added) or self.compare_widget
        set_message(self.status, f"{layer.name}: {result.n_classes} classes of {result.contrast_used} columns "
                                 f"({', '.join(str(c) for c in result.counts)} columns)")
        return added

    def _add_classes(self, layer: Points, result, truth_name: str | None) -> list:
        positions = np.asarray(layer.data, dtype=float)[:, -2:]
        added = []
        for k in range(result.n_classes):
            name = f"{layer.name} class {k}"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            meta = {"class": k, "source_layer": layer.name, "feature": result.feature,
                    "class_mean": float(result.means[k, 0]), "contrast_used": result.contrast_used,
                    "role": layer.metadata.get("role", "")}
            if truth_name is not None:
                meta["truth_layer"] = f"{truth_name} class {k}"
            self.viewer.add_points(
                positions[result.classes == k], name=name, size=points_size_px(positions), scale=layer.scale,
                translate=layer.translate, metadata=meta, face_color="transparent",
                border_color=CLASS_COLOURS[k % len(CLASS_COLOURS)], border_width=0.15, symbol="ring")
            added.append(self.viewer.layers[name])
        return added
