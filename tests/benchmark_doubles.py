"""Test doubles for the benchmark machinery: locators whose answers the tests control.

They are not models: :class:`OracleLocator` returns the labels it was given for an
image, jittered and thinned by known amounts, so the tests know what every
score must be.
"""

from __future__ import annotations

import hashlib

import numpy as np

from napari_atombench.models.base import LocateResult


def image_key(image) -> str:
    array = np.ascontiguousarray(np.asarray(image, dtype=np.float32))
    return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()


class OracleLocator:
    """Returns the registered labels of an image, jittered by ``jitter_px`` and thinned by ``drop``."""

    def __init__(self, name: str = "oracle", jitter_px: float = 0.0, seed: int = 0):
        self.name = name
        self.jitter_px = jitter_px
        self.seed = seed
        self.truth: dict[str, tuple[np.ndarray, float, float]] = {}
        self.calls = 0

    def register(self, image, truth_rc, jitter_px: float | None = None, drop: float = 0.0) -> None:
        self.truth[image_key(image)] = (np.asarray(truth_rc, float).reshape(-1, 2),
                                        self.jitter_px if jitter_px is None else jitter_px, drop)

    def predict_map(self, image, *, progress=None, cancelled=None):
        return np.zeros(np.shape(image), np.float32)

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        self.calls += 1
        truth, jitter, drop = self.truth[image_key(image)]
        rng = np.random.default_rng(self.seed)
        keep = rng.random(len(truth)) >= drop
        offsets = rng.normal(size=truth.shape)
        offsets *= jitter / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1e-12)
        return LocateResult(truth[keep] + offsets[keep], None, {"model": self.name})


class FailingLocator:
    name = "failing"

    def predict_map(self, image, *, progress=None, cancelled=None):
        raise RuntimeError("this locator always fails")

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        raise RuntimeError("this locator always fails")


class EmptyLocator:
    name = "empty"

    def predict_map(self, image, *, progress=None, cancelled=None):
        return np.zeros(np.shape(image), np.float32)

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        return LocateResult(np.zeros((0, 2)), None, {})


#: Shared instance for ``module:attribute`` use in CLI tests (register truth first).
ORACLE = OracleLocator("oracle", jitter_px=0.5)
