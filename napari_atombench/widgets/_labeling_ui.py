"""The Label dock's controls (magicgui), added to the dock and connected; behaviour in labeling.py."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, Label, ProgressBar, PushButton

from ._split import SplitControls
from ._state import status_legend as _status_legend
from ._worker import message_label

#: the refinement methods offered (label -> core.refine method)
METHODS = {
    "Gaussian": "gaussian",
    "Gaussian with overlaps": "joint",
    "Centre of mass": "com",
}


def build_controls(w) -> None:
    """Create the controls of LabelingWidget ``w`` as its attributes, add and connect them."""
    w._image_combo = ComboBox(label="image", choices=w._image_choices)
    w._pixel_size = FloatSpinBox(label="pixel size (Å/px)", value=0.0, min=0.0, max=100.0, step=0.001,
                                    tooltip="0: unknown. Read from and written to the image layer's metadata")
    w._separation = FloatSpinBox(label="column separation (px)", value=0.0, min=0.0, max=2000.0, step=0.5,
                                    tooltip="nearest column distance used by Seed and Snap; 0: estimated "
                                            "from the image")
    w._separation_info = Label(value="")
    w._threshold = FloatSpinBox(label="seed threshold", value=0.1, min=0.0, max=0.95, step=0.05)
    w._dark = CheckBox(text="dark columns (ABF)", value=False)
    w._seed_button = PushButton(text="Seed")
    w._snap = CheckBox(text="snap new points to peak", value=True)
    w._method = ComboBox(label="method", choices=list(METHODS), value="Gaussian")
    w._refine_button = PushButton(text="Refine")
    w._cancel_button = PushButton(text="Cancel", enabled=False)
    w._undo_button = PushButton(text="Undo", enabled=False)
    w._colour_by = ComboBox(label="colour by", choices=["status", "uncertainty_px", "none"], value="status")
    w._low_amplitude = FloatSpinBox(label="low amplitude <", value=0.5, min=0.0, max=1.0, step=0.05,
                                       tooltip="fraction of the median amplitude")
    w._legend = Label(value=_status_legend())
    w._select_button = PushButton(text="Select doubtful")
    w._save_button = PushButton(text="Save labels...")
    w._load_button = PushButton(text="Load labels...")
    w._restore_button = PushButton(text="Restore autosave", enabled=False)
    w._progress = ProgressBar(label="progress", value=0, min=0, max=1)
    w._status = Label(value="")
    w.extend([
        w._image_combo, w._pixel_size, w._separation, w._separation_info,
        w._threshold, w._dark, w._seed_button, w._snap,
        w._method, w._refine_button, w._cancel_button, w._progress, w._undo_button,
        w._colour_by, w._legend, w._low_amplitude, w._select_button,
        w._save_button, w._load_button, w._restore_button, w._status,
    ])
    # sublattices: split the labels (or any Points layer) into one layer per class
    w.splitter = SplitControls(w.viewer, lambda: w.image_layer)
    w.append(w.splitter)
    w._seed_button.changed.connect(lambda: w.seed())
    w._refine_button.changed.connect(lambda: w.refine())
    w._cancel_button.changed.connect(lambda: w.cancel())
    w._undo_button.changed.connect(lambda: w.undo())
    w._select_button.changed.connect(lambda: w.select_doubtful())
    w._save_button.changed.connect(lambda: w.save_labels())
    w._load_button.changed.connect(lambda: w.load_labels())
    w._restore_button.changed.connect(lambda: w.restore_autosave())
    w._colour_by.changed.connect(lambda: w._apply_colours())
    w._colour_by.changed.connect(lambda: setattr(w._legend, "value", _status_legend(w._colour_by.value)))
    w._image_combo.changed.connect(lambda: w._image_changed())
    w._pixel_size.changed.connect(w._pixel_size_edited)
    w._separation.changed.connect(lambda: w._show_separation())
    for label in (w._status, w._separation_info):
        message_label(label)
