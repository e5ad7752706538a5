"""Dock widget "Run atom-locating model".

Thin: reads an Image layer, builds a locator from the model registry, runs it in a
``thread_worker`` (progress per tile, cancel), and adds the probability map (Image)
and the positions (Points ``<image> <model>``, provenance in metadata).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.layers import layer_pixel_size_A, points_size_px, set_layer_pixel_size_A, unproxied
from ..core.contrast import CONTRASTS
from ..models.registry import DEFAULT_MODEL, REGISTRY, get_locator, list_adapted_models
from ._scroll import scroll_body
from ._split import SplitControls
from ._worker import message_label, set_message, start_job

if TYPE_CHECKING:
    import napari

#: Points style of model predictions (labels are yellow discs).
PREDICTION_STYLE = dict(face_color="transparent", border_color="#00e5ff", border_width=0.15, symbol="ring")
NO_PIXEL_SIZE = ("no pixel size: the model guesses the sampling and Compare gives no Å and no pass/fail; "
                 "enter it above")


def _contrast_note(meta: dict) -> str:
    """'; columns: dark (auto)': the polarity the model ran with and who decided it."""
    used = meta.get("contrast_used")
    if used is None:
        return ""
    how = "as chosen"
    if meta.get("contrast") == "auto":  # the model's vote, or the image's skewness where the vote is a tie
        how = "decided by the model" if meta.get("contrast_from") == "model" else "decided on the image"
    counted = "; light columns counted too" if meta.get("light_columns") else ""
    return f"; columns: {used} ({how}){counted}"


def _takes_light_columns(spec) -> bool:
    """Our atombench models take ``light_columns``; ``spec`` None is an adapted one (also ours)."""
    return spec is None or spec.family == "atombench"


def _locate(make_locator, image, pixel_size_A, *, progress, cancelled):
    """The job: build the locator (may load weights) and run it."""
    locator = make_locator()
    return locator, locator.locate(image, pixel_size_A, progress=progress, cancelled=cancelled)


def _model_names(_=None) -> list[str]:
    """The registered models, then the user's adapted ones by name (re-read on reset_choices)."""
    return list(REGISTRY) + [row["name"] for row in list_adapted_models() if row["name"] not in REGISTRY]


class RunModelWidget(Container):
    """Run a registered atom-locating model on an image layer."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self.viewer = unproxied(napari_viewer)  # layers compared as themselves (see unproxied)
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.pixel_size = FloatSpinBox(label="pixel size (Å/px)", value=0.0, min=0.0, max=100.0, step=0.001,
                                       tooltip="0: unknown. Read from and written to the image layer's metadata")
        self.pixel_size_warning = Label(value="")
        self.model = ComboBox(label="model", choices=_model_names,
                              value=DEFAULT_MODEL if DEFAULT_MODEL in REGISTRY else None)
        self.weights = FileEdit(label="weights (optional)", mode="r", filter="*.pt *.pth")
        self.weights_dir = FileEdit(label="weights folder", mode="d")
        self.fidelity = ComboBox(label="fidelity", choices=["default", "original"], value="default")
        self.rescale = FloatSpinBox(label="rescale factor", value=1.0, min=0.1, max=8.0, step=0.1)
        self.tile_size = SpinBox(label="tile size (px)", value=1024, min=64, max=8192, step=64)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.contrast = ComboBox(label="contrast", choices=list(CONTRASTS), value="auto",
                                 tooltip="column polarity: auto decides on the image (bright columns, e.g. HAADF, "
                                         "or dark, e.g. ABF); the decision is shown below and kept in the layer")
        self.light_columns = CheckBox(label="light columns too", value=False,
                                      tooltip="atombench v3: also count light columns between heavy ones (O in "
                                              "iDPC/ABF images); off: the heavy-column convention of HAADF")
        self.threshold = FloatSpinBox(label="threshold", value=0.5, min=0.01, max=0.99, step=0.05)
        self.refine = CheckBox(label="refine positions", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(value="")
        self.extend(
            [self.image, self.pixel_size, self.pixel_size_warning, self.model, self.weights, self.weights_dir,
             self.fidelity, self.rescale, self.tile_size, self.device, self.contrast, self.light_columns,
             self.threshold, self.refine, self.run_button, self.cancel_button, self.progress, self.status]
        )
        # sublattices: split a prediction (and its labels) into one layer per class, scored per class
        self.splitter = SplitControls(self.viewer, lambda: self.image.value)
        self.append(self.splitter)
        for label in (self.status, self.pixel_size_warning):
            message_label(label)
        self.pixel_size_warning.native.setStyleSheet("color: #ffb020")
        self.model.changed.connect(self._on_model)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self.image.changed.connect(self._show_pixel_size)
        self.pixel_size.changed.connect(self._pixel_size_edited)
        self.job = None
        self.worker = None
        self._on_model()
        self._show_pixel_size()
        scroll_body(self)  # beside the Compare dock on a 1000 px tall screen

    # -- choices
    def _image_layers(self, _=None) -> list[Image]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_images(self, _=None) -> None:
        self.image.reset_choices()
        self._show_pixel_size()

    def _show_pixel_size(self, _=None) -> None:
        value = layer_pixel_size_A(self.image.value)
        with self.pixel_size.changed.blocked():
            self.pixel_size.value = value or 0.0
        set_message(self.pixel_size_warning, "" if value or self.image.value is None else NO_PIXEL_SIZE)

    def _pixel_size_edited(self, value: float) -> None:
        set_layer_pixel_size_A(self.image.value, value)
        self._show_pixel_size()

    def _on_model(self, _=None) -> None:
        spec = REGISTRY.get(self.model.value)
        has_threshold = spec is not None and spec.family == "atomnet"
        self.threshold.enabled = has_threshold
        self.threshold.visible = has_threshold
        self.light_columns.visible = _takes_light_columns(spec)

    # -- run
    def _options(self) -> dict[str, Any]:
        spec = REGISTRY.get(self.model.value)  # None: an adapted model (atombench family)
        options: dict[str, Any] = {
            "rescale": float(self.rescale.value),
            "tile_size": int(self.tile_size.value),
            "refine": bool(self.refine.value),
            "contrast": str(self.contrast.value),  # every registered model accepts it
        }
        if spec is not None and spec.family == "atomnet":
            options["threshold"] = float(self.threshold.value)
        if self.light_columns.value and _takes_light_columns(spec):
            options["light_columns"] = True  # weights without the v3 input refuse it in one line
        return options

    def run(self, _=None):
        layer = self.image.value
        if layer is None:
            show_warning("Run atom-locating model: no image layer selected")
            return None
        model = self.model.value
        weights = self.weights.value
        weights = None if weights is None or str(weights) in ("", ".") else weights
        weights_dir = self.weights_dir.value
        if weights_dir is not None and str(weights_dir) not in ("", "."):
            import os

            os.environ["ATOMBENCH_WEIGHTS_DIR"] = str(weights_dir)
        device, fidelity, options = self.device.value, self.fidelity.value, self._options()
        pixel_size_A = layer_pixel_size_A(layer)
        if pixel_size_A is None:
            show_warning(f"{model} on {layer.name}: {NO_PIXEL_SIZE}")

        def make_locator():
            return get_locator(model, weights=weights, device=device, fidelity=fidelity, **options)

        def on_error(exc):
            show_error(f"{model} on {layer.name}: {exc}")
            set_message(self.status, f"error: {exc}")

        def on_cancelled():
            show_info(f"{model}: cancelled")
            self.status.value = "cancelled"

        def on_finish():
            self.run_button.enabled, self.cancel_button.enabled = True, False

        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"running {model}…"
        self.job = start_job(_locate, make_locator, np.asarray(layer.data), pixel_size_A,
                             desc=f"{model} on {layer.name}", bar=self.progress,
                             on_returned=lambda payload: self._add_layers(layer, *payload),
                             on_error=on_error, on_cancelled=on_cancelled, on_finished=on_finish)
        self.worker = self.job.worker
        return self.worker

    def cancel(self, _=None) -> None:
        if self.job is not None:
            self.job.cancel()

    # -- results
    def _add_layers(self, layer: Image, locator, result) -> None:
        name = f"{layer.name} {locator.name}"
        meta = dict(result.metadata)
        meta.update({"image_layer": layer.name, "role": "prediction", "pixel_size_A": layer_pixel_size_A(layer),
                     "contrast": str(self.contrast.value)})
        if result.probability_map is not None:
            map_name = f"{name} map"
            # one map at a time washes nothing out: later maps start hidden
            others_shown = any(lay.visible and lay.metadata.get("role") == "probability map"
                               for lay in self.viewer.layers if lay.name != map_name)
            self._replace(map_name, lambda: self.viewer.add_image(
                result.probability_map,
                name=map_name,
                scale=layer.scale,
                translate=layer.translate,
                colormap="magma",
                opacity=0.5,
                blending="additive",
                visible=not others_shown,
                metadata={"model": locator.name, "image_layer": layer.name, "role": "probability map"},
            ))
        positions = np.asarray(result.positions_rc, dtype=float).reshape(-1, 2)
        self._replace(name, lambda: self.viewer.add_points(
            positions,
            name=name,
            size=points_size_px(positions),
            scale=layer.scale,
            translate=layer.translate,
            metadata=meta,
            **PREDICTION_STYLE,
        ))
        if "refine_notice" in meta:
            show_warning(meta["refine_notice"])
        if len(positions) == 0:
            show_warning(f"{locator.name} found no atom columns in {layer.name}")
        set_message(self.status, f"{len(positions)} positions" + _contrast_note(meta))

    def _replace(self, name: str, add) -> None:
        """Re-running a model replaces its layer in place (same position in the list), no ``[1]`` copies."""
        index = None
        if name in self.viewer.layers:
            index = self.viewer.layers.index(name)
            self.viewer.layers.remove(name)
        new = add()
        if index is not None:
            self.viewer.layers.move(self.viewer.layers.index(new), index)
