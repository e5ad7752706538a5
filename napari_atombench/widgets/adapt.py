"""Dock widget "Adapt model to labels": fine-tune on a labelled region, run, compare;
split columns into sublattices.

Adapt: choose the image, the Points layer with every column of a region labelled
(seed + snap + refine in the Label dock make that quick) and optionally a Shapes
layer whose first rectangle is the region. :func:`~napari_atombench.models.finetune.finetune`
runs through the docks' one job bridge (progress bar per step, cancel), the adapted model then
locates columns in the whole image, the result is added as a Points layer
``<image> <model> adapted`` and handed to the Compare dock; the weights are saved
to the user's model folder (listed by ``atombench models``).

Split: the shared "Split into classes" controls (:mod:`._split`, also in the
Label and Run docks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image, Points, Shapes
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.layers import layer_pixel_size_A, points_size_px, unproxied
from ..models.finetune import finetune, save_adapted_weights
from ..models.adapted import adapted_model_path
from ._scroll import scroll_body
from ._split import SplitControls, show_in_compare
from ._worker import message_label, set_message, start_job
from .run_model import PREDICTION_STYLE

if TYPE_CHECKING:
    import napari

NONE = "(none)"


def adapt_and_locate(model, image, labels_rc, *, region, steps, pixel_size_A, image_name, progress, cancelled):
    """Fine-tune ``model`` on the labelled region, then locate columns in the whole image:
    (FineTuneResult, LocateResult). A job for :func:`~._worker.start_job`."""
    result = finetune(model, image, labels_rc, region=region, steps=steps, pixel_size_A=pixel_size_A,
                      image_name=image_name, progress=progress, cancelled=cancelled)
    return result, result.locator.locate(image, pixel_size_A)


def _region_of(shapes: Shapes, image: Image) -> tuple[float, float, float, float]:
    """Bounding box (r0, c0, r1, c1) of a Shapes layer's first shape, in image pixels."""
    if len(shapes.data) == 0:
        raise ValueError(f"shapes layer {shapes.name!r} has no shape to use as the region")
    corners = np.asarray(shapes.data[0], dtype=float)[:, -2:]
    corners = np.asarray([image.world_to_data(shapes.data_to_world(c)) for c in corners])[:, -2:]
    lo, hi = corners.min(0), corners.max(0)
    return float(np.floor(lo[0] + 0.5)), float(np.floor(lo[1] + 0.5)), float(np.ceil(hi[0] + 0.5)), float(np.ceil(hi[1] + 0.5))


class AdaptWidget(Container):
    """Fine-tune a model on a labelled region; split Points into sublattice classes."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self.viewer = unproxied(napari_viewer)  # layers compared as themselves (see unproxied)
        self.image = ComboBox(label="image", choices=self._layers(Image))
        self.labels = ComboBox(label="labels (region)", choices=self._layers(Points))
        self.region = ComboBox(label="region (shapes)", choices=self._region_choices)
        self.model = ComboBox(label="start from", choices=["atombench"], value="atombench")
        self.steps = SpinBox(label="steps", value=300, min=1, max=100000, step=50)
        self.save = CheckBox(label="save weights to my models", value=True)
        self.adapt_button = PushButton(text="Adapt and run on whole image")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.splitter = SplitControls(self.viewer, lambda: self.image.value)
        # the host dock's names for the shared controls
        self.split_layer, self.split_reference = self.splitter.layer, self.splitter.reference
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(value="")
        message_label(self.status)
        self.extend([self.image, self.labels, self.region, self.model, self.steps, self.save, self.adapt_button,
                     self.cancel_button, self.progress, self.status, self.splitter])
        scroll_body(self)  # beside the Compare dock on a 1000 px tall screen
        self.adapt_button.changed.connect(self.adapt)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.job = None
        self.worker = None
        self.last_result = None
        self.compare_widget = None

    # -- choices
    def _layers(self, kind):
        return lambda _=None: [layer for layer in self.viewer.layers if isinstance(layer, kind)]

    def _region_choices(self, _=None):
        return [(NONE, None)] + [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Shapes)]

    def _refresh(self, _=None) -> None:
        for combo in (self.image, self.labels, self.region):
            combo.reset_choices()

    # -- adapt
    def adapt(self, _=None):
        image_layer, labels_layer = self.image.value, self.labels.value
        if image_layer is None or labels_layer is None:
            show_warning("Adapt model: choose an image and a labels Points layer")
            return None
        try:
            region = None if self.region.value is None else _region_of(self.region.value, image_layer)
        except ValueError as exc:
            show_error(f"Adapt model: {exc}")
            return None
        image = np.asarray(image_layer.data, dtype=np.float32)
        labels = np.asarray(labels_layer.data, dtype=float)[:, -2:]
        model, steps, name = self.model.value, int(self.steps.value), image_layer.name

        def on_error(exc):
            show_error(f"Adapt model on {name}: {exc}")
            set_message(self.status, f"error: {exc}")

        def on_cancelled():
            show_info("Adapt model: cancelled")
            set_message(self.status, "cancelled")

        def on_finished():
            self.adapt_button.enabled, self.cancel_button.enabled = True, False

        self.adapt_button.enabled, self.cancel_button.enabled = False, True
        set_message(self.status, f"adapting {model} to {name} ({steps} steps)…")
        self.job = start_job(
            adapt_and_locate, model, image, labels, region=region, steps=steps,
            pixel_size_A=layer_pixel_size_A(image_layer), image_name=name,
            desc=f"adapting {model} to {name}", bar=self.progress,
            on_returned=lambda payload: self._add_result(image_layer, *payload),
            on_error=on_error, on_cancelled=on_cancelled, on_finished=on_finished)
        self.worker = self.job.worker
        return self.worker

    def cancel(self, _=None) -> None:
        if self.job is not None:
            self.job.cancel()

    def _add_result(self, layer: Image, result, located) -> None:
        self.last_result = result
        card = result.card
        meta = {**located.metadata, "adapted": card, "image_layer": layer.name, "role": "prediction",
                "pixel_size_A": layer.metadata.get("pixel_size_A")}
        if self.save.value:
            path = save_adapted_weights(result, adapted_model_path(layer.name, card["base_model"]))
            meta["weights_path"] = str(path)
        positions = np.asarray(located.positions_rc, dtype=float).reshape(-1, 2)
        name = f"{layer.name} {card['base_model']} adapted"
        self.viewer.add_points(positions, name=name, size=points_size_px(positions), scale=layer.scale,
                               translate=layer.translate, metadata=meta, **PREDICTION_STYLE)
        points = self.viewer.layers[name]
        set_message(self.status, f"validation F1 {card['validation_f1_before']:.3f} -> {card['validation_f1']:.3f}, "
                                 f"{card['steps']} steps, {card['seconds']:.0f} s; {len(positions)} columns")
        self.compare_widget = show_in_compare(self.viewer, [points]) or self.compare_widget

    def split(self, _=None) -> list:
        """Split a Points layer into classes (see :class:`~._split.SplitControls`)."""
        added = self.splitter.split()
        self.compare_widget = self.splitter.compare_widget or self.compare_widget
        return added
