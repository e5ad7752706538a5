"""Dock widget "Run atom-locating model".

Thin: reads an Image layer, builds a locator from the model registry, runs it in a
``thread_worker`` (progress per tile, cancel), and adds the probability map (Image)
and the positions (Points ``<image> <model>``, provenance in metadata).
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.layers import points_size_px
from ..models.registry import REGISTRY, get_locator

if TYPE_CHECKING:
    import napari

#: Points style of model predictions (labels are yellow discs).
PREDICTION_STYLE = dict(face_color="transparent", border_color="#00e5ff", border_width=0.15, symbol="ring")


def locate_in_thread(make_locator, image, pixel_size_A, cancel_event: threading.Event):
    """Generator for a thread_worker: yields (done, total) progress, returns the LocateResult.

    The locator runs in a helper thread so its progress callback can be forwarded
    through the generator; ``cancel_event`` stops it between tiles.
    """
    events: queue.Queue = queue.Queue()

    def run():
        try:
            locator = make_locator()
            result = locator.locate(
                image,
                pixel_size_A,
                progress=lambda done, total: events.put(("progress", (done, total))),
                cancelled=cancel_event.is_set,
            )
            events.put(("done", (locator, result)))
        except BaseException as exc:  # surfaced by the worker's errored signal
            events.put(("error", exc))

    threading.Thread(target=run, daemon=True, name="atombench-locate").start()
    while True:
        kind, payload = events.get()
        if kind == "progress":
            yield payload
        elif kind == "done":
            return payload
        else:
            raise payload


class RunModelWidget(Container):
    """Run a registered atom-locating model on an image layer."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.model = ComboBox(label="model", choices=list(REGISTRY), value="atomnet-cubic" if "atomnet-cubic" in REGISTRY else None)
        self.weights = FileEdit(label="weights (optional)", mode="r", filter="*.pt *.pth")
        self.weights_dir = FileEdit(label="weights folder", mode="d")
        self.fidelity = ComboBox(label="fidelity", choices=["default", "original"], value="default")
        self.rescale = FloatSpinBox(label="rescale factor", value=1.0, min=0.1, max=8.0, step=0.1)
        self.tile_size = SpinBox(label="tile size (px)", value=1024, min=64, max=8192, step=64)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.threshold = FloatSpinBox(label="threshold", value=0.5, min=0.01, max=0.99, step=0.05)
        self.refine = CheckBox(label="refine positions", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.extend(
            [self.image, self.model, self.weights, self.weights_dir, self.fidelity, self.rescale, self.tile_size,
             self.device, self.threshold, self.refine, self.run_button, self.cancel_button, self.status]
        )
        self.model.changed.connect(self._on_model)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self._cancel = threading.Event()
        self.worker = None
        self._on_model()

    # -- choices
    def _image_layers(self, _=None) -> list[Image]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_images(self, _=None) -> None:
        self.image.reset_choices()

    def _on_model(self, _=None) -> None:
        spec = REGISTRY.get(self.model.value)
        has_threshold = spec is not None and spec.family == "atomnet"
        self.threshold.enabled = has_threshold
        self.threshold.visible = has_threshold

    # -- run
    def _options(self) -> dict[str, Any]:
        spec = REGISTRY[self.model.value]
        options: dict[str, Any] = {
            "rescale": float(self.rescale.value),
            "tile_size": int(self.tile_size.value),
            "refine": bool(self.refine.value),
        }
        if spec.family == "atomnet":
            options["threshold"] = float(self.threshold.value)
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
        pixel_size_A = layer.metadata.get("pixel_size_A")

        def make_locator():
            return get_locator(model, weights=weights, device=device, fidelity=fidelity, **options)

        self._cancel.clear()
        image = np.asarray(layer.data)
        pbar = napari_progress(total=0, desc=f"{model} on {layer.name}")
        # errors are shown by on_error (not re-raised into the Qt event loop)
        worker = thread_worker(locate_in_thread, start_thread=False, ignore_errors=True)(
            make_locator, image, pixel_size_A, self._cancel
        )

        def on_progress(value):
            done, total = value
            pbar.total = total
            pbar.n = done
            pbar.refresh()
            self.status.value = f"tile {done}/{total}"

        def on_error(exc):
            from ..models.base import Cancelled

            if isinstance(exc, Cancelled):
                show_info(f"{model}: cancelled")
            else:
                show_error(f"{model} on {layer.name}: {exc}")
            self.status.value = f"error: {exc}" if not isinstance(exc, Cancelled) else "cancelled"

        def on_finish():
            pbar.close()
            self.run_button.enabled, self.cancel_button.enabled = True, False

        worker.yielded.connect(on_progress)
        worker.returned.connect(lambda payload: self._add_layers(layer, *payload))
        worker.errored.connect(on_error)
        worker.finished.connect(on_finish)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = "running..."
        self.worker = worker
        worker.start()
        return worker

    def cancel(self, _=None) -> None:
        self._cancel.set()

    # -- results
    def _add_layers(self, layer: Image, locator, result) -> None:
        name = f"{layer.name} {locator.name}"
        meta = dict(result.metadata)
        meta.update({"image_layer": layer.name, "role": "prediction", "pixel_size_A": layer.metadata.get("pixel_size_A")})
        if result.probability_map is not None:
            self.viewer.add_image(
                result.probability_map,
                name=f"{name} map",
                scale=layer.scale,
                translate=layer.translate,
                colormap="magma",
                opacity=0.5,
                blending="additive",
                metadata={"model": locator.name, "image_layer": layer.name},
            )
        positions = np.asarray(result.positions_rc, dtype=float).reshape(-1, 2)
        self.viewer.add_points(
            positions,
            name=name,
            size=points_size_px(positions),
            scale=layer.scale,
            translate=layer.translate,
            metadata=meta,
            **PREDICTION_STYLE,
        )
        if "refine_notice" in meta:
            show_warning(meta["refine_notice"])
        if len(positions) == 0:
            show_warning(f"{locator.name} found no atom columns in {layer.name}")
        self.status.value = f"{len(positions)} positions"
