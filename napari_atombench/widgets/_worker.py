"""The one bridge from a long call to a napari ``thread_worker``, used by every dock.

A job is any function taking ``progress(done, total)`` and ``cancelled()``
keyword callbacks (the project's convention for long work). :func:`start_job`
runs it in a helper thread, forwards its progress through a generator (so the
worker's ``yielded`` signal carries it to the GUI thread), shows it in the
dock's own progress bar and in napari's activity panel, and turns
:class:`~napari_atombench.models.base.Cancelled` into ``on_cancelled``.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class Job:
    """A started job: ``worker`` (napari GeneratorWorker) and :meth:`cancel`."""

    def __init__(self):
        self.cancel_event = threading.Event()
        self.worker = None

    def cancel(self) -> None:
        self.cancel_event.set()


def _generator(func, args, kwargs, cancel_event: threading.Event):
    events: queue.Queue = queue.Queue()

    def run():
        try:
            out = func(*args, progress=lambda done, total: events.put(("progress", (int(done), int(total)))),
                       cancelled=cancel_event.is_set, **kwargs)
            events.put(("done", out))
        except BaseException as exc:  # handed to the worker's errored signal
            events.put(("error", exc))

    threading.Thread(target=run, daemon=True, name="atombench-job").start()
    while True:
        kind, payload = events.get()
        if kind == "progress":
            yield payload
        elif kind == "done":
            return payload
        else:
            raise payload


def start_job(
    func: Callable,
    *args,
    desc: str,
    bar=None,
    on_returned: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    **kwargs,
) -> Job:
    """Run ``func(*args, progress=…, cancelled=…, **kwargs)`` in a thread worker.

    Parameters
    ----------
    bar : QProgressBar or magicgui ProgressBar, optional
        The dock's progress bar; shown while the job runs.
    on_returned, on_error, on_cancelled, on_finished : callables, optional
        Called in the GUI thread.
    """
    from napari.qt.threading import thread_worker
    from napari.utils import progress as napari_progress

    from ..models.base import Cancelled

    job = Job()
    qbar = getattr(bar, "native", bar)
    pbar = napari_progress(total=0, desc=desc)
    if qbar is not None:
        qbar.setRange(0, 0)  # busy until the first progress report
        qbar.setVisible(True)
    worker = thread_worker(_generator, start_thread=False, ignore_errors=True)(func, args, kwargs, job.cancel_event)

    def progressed(value):
        done, total = value
        pbar.total = total
        pbar.n = done
        pbar.refresh()
        if qbar is not None:
            qbar.setRange(0, max(total, 1))
            qbar.setValue(done)

    def errored(exc):
        if isinstance(exc, Cancelled):
            if on_cancelled is not None:
                on_cancelled()
        elif on_error is not None:
            on_error(exc)

    def finished():
        pbar.close()
        if qbar is not None and qbar.maximum() == 0:  # no progress reported: stop the busy indicator
            qbar.setRange(0, 1)
            qbar.setValue(0 if job.cancel_event.is_set() else 1)
        if on_finished is not None:
            on_finished()

    worker.yielded.connect(progressed)
    if on_returned is not None:
        worker.returned.connect(on_returned)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    job.worker = worker
    worker.start()
    return job


#: longest message shown in a dock; the whole text is in the tooltip
MESSAGE_CHARS = 240
#: a word longer than this (a path, a URL) gets break opportunities so it wraps
_WORD_CHARS = 32


def message_label(label) -> None:
    """Make a status label wrap and never widen its dock (text set with :func:`set_message`)."""
    from qtpy.QtWidgets import QSizePolicy

    native = getattr(label, "native", label)
    native.setWordWrap(True)
    native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    native.setMinimumWidth(0)


def short_message(text: str) -> str:
    """``text`` cut to :data:`MESSAGE_CHARS` with long words breakable (zero-width spaces)."""
    text = str(text)
    if len(text) > MESSAGE_CHARS:
        text = text[: MESSAGE_CHARS - 1] + "…"
    words = []
    for word in text.split(" "):
        if len(word) > _WORD_CHARS:
            word = "\u200b".join(word[i : i + _WORD_CHARS] for i in range(0, len(word), _WORD_CHARS))
        words.append(word)
    return " ".join(words)


def set_message(label, text: str) -> None:
    """Show ``text`` in a dock's status label: wrapped, at most a few lines, all of it in the tooltip."""
    native = getattr(label, "native", label)
    native.setText(short_message(text))
    native.setToolTip(str(text))
