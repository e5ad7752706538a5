"""The Compare dock's failure-case inspector: list the FP and FN of one prediction, centre the view on each."""

from __future__ import annotations

import numpy as np

from .._napari.layers import OVERLAY_KEY, points_size_px
from ._compare_state import MAX_CASES


class FailureInspector:
    """Mixin of CompareWidget (uses its ``results``, layers, ``case_list`` and ``inspect_*`` controls)."""

    def _selected_prediction(self) -> str | None:
        name = self.inspect_combo.currentText()
        return name or None

    def _fill_inspector(self, *_args) -> None:
        name = self._selected_prediction()
        current = self.case_list.currentRow()
        self.case_list.blockSignals(True)
        self.case_list.clear()
        self._cases = []
        comparison = self.results.get(name) if name is not None else None
        if comparison is not None:
            pred_layer = next((lay for lay in self.prediction_layers if lay.name == name), None)
            predicted = np.asarray(pred_layer.data) if pred_layer is not None else np.zeros((0, 2))
            truth = np.asarray(self.truth_layer.data)
            self._cases = [("FP", int(i), predicted[i]) for i in comparison.fp_index[:MAX_CASES]] + [
                ("FN", int(i), truth[i]) for i in comparison.fn_index[:MAX_CASES]
            ]
            self.case_list.addItems(
                [f"{kind} #{index}  (row {rc[0]:.1f}, col {rc[1]:.1f})" for kind, index, rc in self._cases]
            )
            if self._cases and current >= 0:  # keep the place while the user edits
                self.case_list.setCurrentRow(min(current, len(self._cases) - 1))
        self.case_list.blockSignals(False)
        if comparison is not None:
            n_fp, n_fn = len(comparison.fp_index), len(comparison.fn_index)
            more = f" (the first {MAX_CASES} of each are listed)" if max(n_fp, n_fn) > MAX_CASES else ""
            self.inspect_label.setText(
                f"{n_fp} false positives, {n_fn} false negatives{more}: click one, or use "
                "previous / next, to centre the view on it"
            )
        else:
            self.inspect_label.setText("")
        for button in (self.prev_button, self.next_button):
            button.setEnabled(bool(self._cases))

    def step_case(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) failure case, wrapping around."""
        if not self._cases:
            return
        row = self.case_list.currentRow()
        row = (row + step) % len(self._cases) if row >= 0 else (0 if step > 0 else len(self._cases) - 1)
        self.show_case(row)

    def show_case(self, row: int) -> None:
        """Centre and zoom the viewer on failure case ``row`` of the list."""
        if not 0 <= row < len(self._cases):
            return
        self.case_list.setCurrentRow(row)
        kind, _index, rc = self._cases[row]
        self._mark_case(kind, rc)
        camera = self._camera()
        camera.center = (float(rc[0]), float(rc[1]))
        camera.zoom = self._inspection_zoom()

    def _mark_case(self, kind: str, rc) -> None:
        """A large ring around the failure case on the canvas (one layer, moved from case to case)."""
        name = "failure case"
        point = np.asarray(rc, dtype=float).reshape(1, 2)
        marker = next((lay for lay in self.viewer.layers if lay.metadata.get(OVERLAY_KEY) == "case"), None)
        if marker is None:
            truth = np.asarray(self.truth_layer.data) if self.truth_layer is not None else np.zeros((0, 2))
            active = self.viewer.layers.selection.active
            self.viewer.add_points(point, name=name, size=6.0 * points_size_px(truth),  # 1.5 column spacings
                                   face_color="transparent", border_color="white", border_width=0.08,
                                   symbol="ring", metadata={OVERLAY_KEY: "case", "kind": kind})
            if active is not None:
                self.viewer.layers.selection.active = active
        else:
            marker.data = point
            marker.metadata["kind"] = kind

    def _camera(self):
        # napari 0.9 moved the camera to viewer.scene; older versions have viewer.camera
        scene = getattr(self.viewer, "scene", None)
        return scene.camera if scene is not None else self.viewer.camera

    def _inspection_zoom(self) -> float:
        """A zoom that shows about six column spacings around the case."""
        truth = np.asarray(self.truth_layer.data) if self.truth_layer is not None else np.zeros((0, 2))
        spacing = 4.0 * points_size_px(truth) if len(truth) >= 2 else 10.0  # size = spacing / 4
        window_px = max(6.0 * spacing, 16.0)
        try:
            canvas = min(self.viewer.window._qt_viewer.canvas.size)
        except Exception:  # no Qt canvas (headless model): a typical dock-side canvas
            canvas = 600
        return float(max(canvas / window_px, 0.01))

