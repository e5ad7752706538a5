"""Point labels in a Matplotlib figure that never overlap (the Benchmark dock's case names)."""

from __future__ import annotations

#: offsets (points) tried in turn for a label that collides: upper right, lower right, upper left, lower left
OFFSETS = ((3, 3, "left", "bottom"), (3, -3, "left", "top"), (-3, 3, "right", "bottom"), (-3, -3, "right", "top"))


def declutter_annotations(figure) -> int:
    """Move each point label of ``figure`` to a free corner of its point, or hide it.

    Labels are placed in order; a label that overlaps one already placed tries the
    other corners of its point (:data:`OFFSETS`) and is hidden when all collide,
    so the names shown can all be read.

    Parameters
    ----------
    figure : matplotlib.figure.Figure

    Returns
    -------
    int
        Number of labels hidden.
    """
    from matplotlib.text import Annotation

    figure.draw_without_rendering()  # final layout, so the extents are those drawn
    renderer = figure.canvas.get_renderer()
    hidden = 0
    for ax in figure.axes:
        placed = []
        for label in [t for t in ax.texts if isinstance(t, Annotation) and t.get_visible()]:
            for dx, dy, ha, va in OFFSETS:
                label.set_position((dx, dy))
                label.set_ha(ha)
                label.set_va(va)
                box = label.get_window_extent(renderer)
                if not any(box.overlaps(other) for other in placed):
                    placed.append(box)
                    break
            else:
                label.set_visible(False)
                hidden += 1
    return hidden
