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


def test_refine_hint_suggests_joint_fits_when_neighbours_share_the_window():
    from napari_atombench.widgets._state import refine_hint

    status = np.array(["converged"] * 6 + ["fell back"] * 4, dtype=object)
    reason = np.array([""] * 6 + ["Gaussian fit failed (sigma absurd); centre of mass used"] * 3
                      + ["Gaussian fit failed (amplitude not significant); centre of mass used"], dtype=object)
    hint = refine_hint("gaussian", status, reason)
    assert hint.startswith("3 of 10 columns share their fit window") and "Gaussian with overlaps" in hint
    assert refine_hint("gaussian_joint", status, reason) == ""  # already fitting them together
    assert refine_hint("gaussian", status[:6], reason[:6]) == ""  # nothing fell back
    weak_only = np.where(reason == "", "", "Gaussian fit failed (amplitude not significant)")
    assert refine_hint("gaussian", status, weak_only) == ""  # not an overlap problem
