"""Qt-free state and rules of the docks (no viewer)."""

from __future__ import annotations

import numpy as np

from napari_atombench.widgets._state import refine_summary


def test_refine_summary_counts_each_status_and_reason():
    rng = np.random.default_rng(3)
    n_conv, n_sigma, n_left, n_out = rng.integers(1, 50, size=4)
    status = ["converged"] * n_conv + ["fell back"] * (n_sigma + n_left) + ["rejected"] * n_out
    reason = [""] * n_conv + ["sigma absurd"] * n_sigma + ["centre left its window"] * n_left \
        + ["outside the image"] * n_out
    order = rng.permutation(len(status))
    text = refine_summary(np.array(status, dtype=object)[order], np.array(reason, dtype=object)[order])
    parts = dict(part.split(" ", 1)[::-1] if ":" not in part else (part.split(":")[0].split(" ", 1)[1], part)
                 for part in text.split(" | "))
    assert parts["converged"] == str(n_conv)
    fell_back = parts["fell back"]
    assert fell_back.startswith(f"{n_sigma + n_left} fell back: ")
    assert f"{n_sigma} sigma absurd" in fell_back and f"{n_left} centre left its window" in fell_back
    assert parts["rejected"] == f"{n_out} rejected: outside the image"


def test_refine_summary_single_reason_reads_like_a_sentence():
    assert refine_summary(["fell back"] * 328, ["sigma absurd"] * 328) == "328 fell back: sigma absurd"
