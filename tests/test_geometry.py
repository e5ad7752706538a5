"""The one resampler and the frame geometry (napari_atombench.core.geometry), one maximum per plateau."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from napari_atombench.core.geometry import positions_to_frame, resample
from napari_atombench.core.peaks import one_per_plateau

SHAPES = [((64, 80), (128, 160)), ((64, 80), (32, 40)), ((100, 100), (37, 141)), ((30, 20), (90, 7)), ((50, 50), (49, 51))]


def _float32_tolerance(values):
    # the sums run in float64 and are rounded once to float32; a float32 reference
    # (or torch's float32 kernels) differs by a few float32 steps of the largest value
    return 64 * float(np.spacing(np.float32(np.abs(values).max())))


@pytest.mark.parametrize("shape_in, shape_out", SHAPES)
def test_without_antialiasing_it_is_bilinear_interpolation_at_mapped_centres(shape_in, shape_out):
    image = np.random.default_rng(0).random(shape_in).astype(np.float32)
    rows = (np.arange(shape_out[0]) + 0.5) * shape_in[0] / shape_out[0] - 0.5
    cols = (np.arange(shape_out[1]) + 0.5) * shape_in[1] / shape_out[1] - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    expected = map_coordinates(image.astype(np.float64), [rr, cc], order=1, mode="nearest")
    np.testing.assert_allclose(resample(image, shape_out, antialias=False), expected, rtol=0, atol=_float32_tolerance(expected))


@pytest.mark.parametrize("shape_in, shape_out", SHAPES)
def test_matches_torch_antialiased_bilinear(shape_in, shape_out):
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(1).random(shape_in).astype(np.float32) * 1000
    t = torch.from_numpy(image)[None, None]
    shrinking = shape_out[0] < shape_in[0] or shape_out[1] < shape_in[1]
    expected = torch.nn.functional.interpolate(t, size=shape_out, mode="bilinear", align_corners=False,
                                               antialias=shrinking)[0, 0].numpy()
    # torch keeps its weights and both passes in float32: ~16 products of rounded weights
    # and values, rounded twice, differ by up to ~50 float32 steps of the largest value
    np.testing.assert_allclose(resample(image, shape_out), expected, rtol=0, atol=4 * _float32_tolerance(expected))


def test_antialiased_shrinking_averages_and_keeps_linear_ramps():
    rows, cols = np.mgrid[0:120, 0:90].astype(np.float64)
    ramp = (2.0 * rows + 0.5 * cols).astype(np.float32)
    small = resample(ramp, (40, 30))  # factor 3: every output pixel averages a 3x3+ neighbourhood
    r, c = np.mgrid[0:40, 0:30]
    src_r, src_c = (r + 0.5) * 3 - 0.5, (c + 0.5) * 3 - 0.5
    inner = (slice(1, -1), slice(1, -1))  # the symmetric filter is exact for a ramp away from the edges
    np.testing.assert_allclose(small[inner], (2.0 * src_r + 0.5 * src_c)[inner], atol=_float32_tolerance(ramp))
    # a checkerboard (the highest frequency) averages out instead of aliasing
    checker = ((rows + cols) % 2).astype(np.float32)
    assert np.ptp(resample(checker, (40, 30))[inner]) < 0.2
    assert np.ptp(resample(checker, (40, 30), antialias=False)[inner]) == pytest.approx(1.0)


def test_resample_round_trip_keeps_pixel_centres_and_rejects_bad_input():
    points = np.array([[10.0, 20.0], [33.3, 47.1]])
    back = positions_to_frame(positions_to_frame(points, (50, 60), (100, 120)), (100, 120), (50, 60))
    np.testing.assert_allclose(back, points)
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = resample(image, (3, 4))
    assert np.array_equal(same, image) and same is not image
    with pytest.raises(ValueError, match="2D"):
        resample(np.zeros((2, 3, 4)), (4, 4))
    with pytest.raises(ValueError, match="shape"):
        resample(image, (0, 4))


def test_one_per_plateau_counts_tied_maxima_once():
    mask = np.zeros((8, 8), bool)
    mask[2, 2] = mask[2, 3] = True  # two pixels tying exactly: one column between them
    mask[6, 6] = True
    mask[4, 0] = True
    r, c = one_per_plateau(mask)
    assert len(r) == 3
    assert list(zip(r.tolist(), c.tolist()))[1:] == [(4, 0), (6, 6)]  # first-pixel (row-major) order
    assert r[0] == 2 and c[0] in (2, 3)
    isolated = np.zeros((5, 5), bool)
    isolated[[0, 2, 4], [4, 1, 3]] = True
    assert [a.tolist() for a in one_per_plateau(isolated)] == [a.tolist() for a in np.nonzero(isolated)]
