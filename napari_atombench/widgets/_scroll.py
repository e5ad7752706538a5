"""Dock bodies that scroll vertically, so that docks side by side fit a 1000 px tall screen.

A ``QDockWidget`` cannot be shorter than its widget's minimum height, and the main
window cannot be shorter than its docks stacked: the Run and Compare docks together
asked for a 1334 px tall window, taller than a 1600x1000 screen, so the bottom of the
window was off the screen. napari docks a magicgui container's ``native`` widget, not
the scroll area ``Container(scrollable=True)`` makes, so every dock puts its own body
in a scroll area with :func:`scroll_body`.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


class _VerticalScroll(QScrollArea):
    """Scrolls vertically only: as wide as its body needs, as tall as its body when there is room."""

    def _extra_width(self) -> int:
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:  # QScrollArea caps its hint at 24 text lines; the body's own is wanted
        body = self.widget().sizeHint()
        return QSize(body.width() + self._extra_width(), body.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.widget().minimumSizeHint().width() + self._extra_width(), super().minimumSizeHint().height())


class _Body(QWidget):
    """The scrolled contents. A scroll area makes a body whose layout has height-for-width (any
    word-wrapped label) as tall as its *preferred* height, so a dock that fitted would scroll;
    this body asks only for its minimum and takes what the viewport gives beyond it."""

    def heightForWidth(self, width: int) -> int:
        layout = self.layout()
        return layout.minimumHeightForWidth(width) if layout is not None else super().heightForWidth(width)


class _RelayLayoutRequests(QObject):
    """Tell the scroll area when its body's size hints change (a table gained columns)."""

    def __init__(self, area: QScrollArea):
        super().__init__(area)
        self._area = area

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self._area.updateGeometry()
        return False


def scroll_body(widget, keep_top: int = 0) -> QScrollArea:
    """Move the layout of ``widget`` (a QWidget or a magicgui container) into a vertical scroll area
    inside it; the widget keeps its children, signals and width, and its dock can be made shorter
    than its contents. The first ``keep_top`` items of the layout stay above the scroll area, always
    in view (e.g. a metric table). Returns the scroll area."""
    native = getattr(widget, "native", widget)
    layout = native.layout()
    kept = [layout.takeAt(0) for _ in range(keep_top)]
    body = _Body()
    body.setLayout(layout)  # Qt moves the layout and its child widgets to the body
    area = _VerticalScroll()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(body)
    body.installEventFilter(_RelayLayoutRequests(area))
    outer = QVBoxLayout(native)
    if keep_top:
        outer.setContentsMargins(*_margins(layout))
        layout.setContentsMargins(0, 0, 0, 0)
    else:
        outer.setContentsMargins(0, 0, 0, 0)
    for item in kept:
        if item.layout() is not None:
            outer.addLayout(item.layout())
        elif item.widget() is not None:
            outer.addWidget(item.widget())
        else:
            outer.addItem(item)
    outer.addWidget(area, 1)
    return area


def _margins(layout) -> tuple[int, int, int, int]:
    m = layout.contentsMargins()
    return m.left(), m.top(), m.right(), m.bottom()
