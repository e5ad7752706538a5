"""Validation anchors for the column-kernel library: full abTEM multislice vs the kernel sum.

Run through ``python scripts/build_column_kernels.py --anchors [--pt-on-carbon]``
(it needs abTEM, like the library build). For every (kV, convergence) of the
library it simulates SrTiO3 [100] (a periodic 4 x 4 cell crop, one frozen-phonon
configuration, the library's slicing and detectors), scans one unit cell at
a/14 = 0.279 Å, averaging two frozen-phonon configurations, and compares each detector at several thicknesses with the sum of
the library's kernels rendered by ``core.column_kernels`` (periodic images of
every column within the kernel radius included):

    R² = 1 - Σ (multislice - kernels)² / Σ (multislice - mean)²

with nothing fitted (``r2_affine``, the R² of the best offset and scale, is kept
beside it to tell shape from level errors); for iDPC (defined up to a constant) both images are taken
about their means, and for DPC the two components are pooled. The R² table goes
into the library's metadata (``anchors``), from which
``ColumnKernelLibrary.accepted`` decides; the multislice crops themselves are
written beside the library (``column_kernel_anchors.npz``) so that the test suite
recomputes every R² without abTEM.

``--pt-on-carbon`` adds a line scan through a Pt atom on the entrance vs the exit
surface of 10 nm of amorphous carbon (HAADF, ABF, iDPC; 300 kV, 20 mrad),
reported as contrast over the support's own fluctuation and FWHM, beside the
library's Pt kernel at depth 0 and 100 Å.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [p for p in (str(HERE), str(HERE.parent)) if p not in sys.path]  # the sibling script; this tree
import build_column_kernels as bck  # noqa: E402  (sibling script: grid, detectors)

from napari_atombench.core.column_kernels import ACCEPT_R2, ColumnKernelLibrary, render_kernel_image  # noqa: E402

A_SRTIO3 = 3.905
CELLS = 4
SCAN_GPTS = 14
#: Frozen-phonon configurations averaged in the anchors (the reference must be a thermal mean, not one snapshot)
ANCHOR_CONFIGS = 2
#: (u, v, w) fractional positions in the perovskite cell, w shifted by 1/4 so no atom sits on a slice boundary
PEROVSKITE = (("Sr", 0, 0, 0.25), ("O", 0.5, 0.5, 0.25), ("Ti", 0.5, 0.5, 0.75), ("O", 0.5, 0, 0.75),
              ("O", 0, 0.5, 0.75))
#: projected columns (u, v, stack)
COLUMNS = ((0, 0, "Sr"), (0.5, 0.5, "TiO"), (0.5, 0, "O"), (0, 0.5, "O"))


def srtio3_atoms(repeats: int):
    import ase

    cell = CELLS * A_SRTIO3
    symbols, positions = [], []
    for i in range(CELLS):
        for j in range(CELLS):
            for k in range(repeats):
                for el, u, v, w in PEROVSKITE:
                    symbols.append(el)
                    positions.append(((i + u) * A_SRTIO3, (j + v) * A_SRTIO3, (k + w) * A_SRTIO3))
    return ase.Atoms(symbols, positions=positions, cell=(cell, cell, repeats * A_SRTIO3), pbc=True)


def multislice_srtio3(kv: float, conv: float, repeats: list[int]) -> dict:
    """Detector images (rows = y, cols = x) of one scanned unit cell at each thickness."""
    abtem = bck._setup_abtem()
    frozen = abtem.FrozenPhonons(srtio3_atoms(max(repeats)), num_configs=ANCHOR_CONFIGS, sigmas=bck.FP_SIGMA_A,
                                 seed=bck.SEED)
    potential = abtem.Potential(frozen, sampling=bck.SAMPLING_A, slice_thickness=A_SRTIO3 / 2,
                                exit_planes=tuple(2 * n - 1 for n in repeats), projection="infinite")
    probe = abtem.Probe(energy=kv * 1e3, semiangle_cutoff=conv)
    start = (A_SRTIO3, A_SRTIO3)
    scan = abtem.GridScan(start=start, end=(2 * A_SRTIO3, 2 * A_SRTIO3), gpts=SCAN_GPTS, endpoint=False)
    measured = probe.scan(potential, scan=scan, detectors=abtem.PixelatedDetector(max_angle="cutoff")).compute()
    array = np.asarray(measured.array, dtype=np.float64)
    if array.ndim == 6:  # (configurations, thickness, x, y, kx, ky): the thermal mean
        array = array.mean(axis=0)
    patterns = array.reshape(len(repeats), SCAN_GPTS, SCAN_GPTS, *measured.shape[-2:])
    signals = integrate_xy(patterns, measured.sampling[-2:], kv, conv)
    vacuum = bck.vacuum_levels(kv, conv, extent_A=CELLS * A_SRTIO3)
    signals["vacuum"] = {d: np.float64(vacuum[d]) for d in ("haadf", "bf", "abf")}
    return signals


def integrate_xy(patterns, sampling, kv, conv) -> dict:
    """Detector images from scan-ordered (x, y) patterns, transposed to (row = y, col = x)."""
    signals = bck.integrate_patterns(patterns, sampling, kv, conv)
    return {k: np.swapaxes(v, -1, -2) for k, v in signals.items()}


def idpc_periodic(com_x: np.ndarray, com_y: np.ndarray, step_A: float) -> np.ndarray:
    """ψ with ∇ψ = (com_x, com_y) on a periodic scan (Fourier integration, mean 0); images (row = y, col = x)."""
    rows, cols = com_x.shape[-2:]
    ky = np.fft.fftfreq(rows, d=step_A)[:, None]
    kx = np.fft.fftfreq(cols, d=step_A)[None, :]
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    spectrum = (kx * np.fft.fft2(com_x) + ky * np.fft.fft2(com_y)) / (2j * np.pi * k2)
    spectrum[..., 0, 0] = 0.0
    return np.real(np.fft.ifft2(spectrum))


def kernel_columns(step_A: float, reach_A: float) -> tuple[np.ndarray, list[str]]:
    """Every column (periodic images included) within ``reach_A`` of the scanned cell, in scan pixels."""
    n = int(np.ceil(reach_A / A_SRTIO3)) + 1
    positions, species = [], []
    for i in range(-n, n + 2):
        for j in range(-n, n + 2):
            for u, v, stack in COLUMNS:
                x, y = (i + u) * A_SRTIO3, (j + v) * A_SRTIO3  # relative to the scan start
                positions.append((y / step_A, x / step_A))
                species.append(stack)
    return np.array(positions), species


def r_squared(reference: np.ndarray, model: np.ndarray) -> float:
    """1 - SS_res / SS_tot over all values (the last axes are pooled); nothing fitted."""
    return float(1.0 - ((reference - model) ** 2).sum() / ((reference - reference.mean()) ** 2).sum())


def compare(library: ColumnKernelLibrary, kv: float, conv: float, repeats: list[int], measured: dict) -> tuple:
    """(anchor rows, kernel images) for every detector and thickness."""
    step_A = A_SRTIO3 / SCAN_GPTS
    positions, species = kernel_columns(step_A, library.radius_A[-1])
    shape = (SCAN_GPTS, SCAN_GPTS)
    rows, images = [], {}
    for t, n in enumerate(repeats):
        common = dict(pixel_size_A=step_A, kv=kv, convergence_mrad=conv, thickness_A=n * A_SRTIO3)
        kern = {d: render_kernel_image(shape, positions, species, library, detector=d, **common).image
                for d in ("haadf", "bf", "abf", "idpc", "dpc_x", "dpc_y")}
        for d in ("haadf", "bf", "abf"):  # the vacuum level of the crop's own grid (see bck.vacuum_levels)
            kern[d] += measured["vacuum"][d] - library.vacuum_level(d, kv=kv, convergence_mrad=conv)
        ms_idpc = idpc_periodic(measured["com_x"][t], measured["com_y"][t], step_A)
        pairs = {d: (measured[d][t], kern[d]) for d in ("haadf", "bf", "abf")}
        pairs["idpc"] = (ms_idpc - ms_idpc.mean(), kern["idpc"] - kern["idpc"].mean())
        pairs["dpc"] = (np.stack([measured["com_x"][t], measured["com_y"][t]]), np.stack([kern["dpc_x"], kern["dpc_y"]]))
        for d, (ref, model) in pairs.items():
            rows.append(dict(crystal="SrTiO3 [100]", detector=d, kv=float(kv), convergence_mrad=float(conv),
                             thickness_A=round(n * A_SRTIO3, 3), r2=round(r_squared(ref, model), 4),
                             r2_affine=round(float(np.corrcoef(ref.ravel(), model.ravel())[0, 1]) ** 2, 4)))
        images[n] = dict(kern, ms_idpc=ms_idpc, ms_vacuum=measured["vacuum"],
                         **{f"ms_{k}": measured[k][t] for k in measured if k != "vacuum"})
    return rows, images


def run_anchors(library_path: Path, repeats: list[int], pt_on_carbon: bool = False) -> int:
    library = ColumnKernelLibrary.load(library_path)
    t0 = time.time()
    all_rows, crops = [], {}
    for kv in library.kv:
        for conv in library.convergence_mrad:
            t = time.time()
            measured = multislice_srtio3(kv, conv, repeats)
            rows, images = compare(library, kv, conv, repeats, measured)
            all_rows += rows
            for n, imgs in images.items():
                for k, v in imgs.items():
                    if k == "ms_vacuum":
                        crops.update({f"vacuum_{d}_{kv:g}kV_{conv:g}mrad": np.float64(x) for d, x in v.items()})
                    elif k.startswith("ms_"):
                        crops[f"{k[3:]}_{kv:g}kV_{conv:g}mrad_{n}"] = v.astype(np.float32)
            print(f"anchor SrTiO3 [100] {kv:g} kV {conv:g} mrad: {time.time() - t:.0f} s", flush=True)
    print_table(all_rows)
    print(markdown_table(all_rows))
    save(library_path, library, all_rows, crops, repeats, time.time() - t0)
    if pt_on_carbon:  # after the table is safe on disk: the longer, optional anchor
        t = time.time()
        report = pt_on_carbon_anchor(library)
        report["seconds"] = round(time.time() - t, 1)
        _update_metadata(library_path, pt_on_carbon=report)
    return 0


def markdown_table(rows: list[dict]) -> str:
    """The R² table for docs/simulator.md: R² (R² after offset and scale) per detector."""
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    keys = list(dict.fromkeys((r["kv"], r["convergence_mrad"], r["thickness_A"]) for r in rows))
    lines = ["| kV | mrad | thickness (Å) | " + " | ".join(detectors) + " |",
             "|---|---|---|" + "---|" * len(detectors)]
    for key in keys:
        vals = {r["detector"]: r for r in rows if (r["kv"], r["convergence_mrad"], r["thickness_A"]) == key}
        lines.append(f"| {key[0]:g} | {key[1]:g} | {key[2]:.1f} | "
                     + " | ".join(f"{vals[d]['r2']:.3f} ({vals[d]['r2_affine']:.3f})" for d in detectors) + " |")
    verdicts = []
    for d in detectors:
        worst = min(r["r2"] for r in rows if r["detector"] == d)
        verdicts.append(f"{d} {'accepted' if worst >= ACCEPT_R2 else 'NOT accepted'} (min {worst:.3f})")
    return "\n".join(lines) + "\n\nVerdict: " + "; ".join(verdicts) + "."


def print_table(rows: list[dict]) -> None:
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    keys = list(dict.fromkeys((r["kv"], r["convergence_mrad"], r["thickness_A"]) for r in rows))
    print("R² of the kernel sum against full multislice (in brackets: after the best offset and scale)")
    print(f"{'kV':>4} {'mrad':>5} {'t (Å)':>7} " + " ".join(f"{d:>15}" for d in detectors))
    for key in keys:
        vals = {r["detector"]: r for r in rows if (r["kv"], r["convergence_mrad"], r["thickness_A"]) == key}
        print(f"{key[0]:>4g} {key[1]:>5g} {key[2]:>7.2f} "
              + " ".join(f"{vals[d]['r2']:>7.3f} ({vals[d]['r2_affine']:.3f})" for d in detectors))
    for d in detectors:
        worst = min(r["r2"] for r in rows if r["detector"] == d)
        print(f"{d}: min R² {worst:.3f} -> {'accepted' if worst >= ACCEPT_R2 else 'NOT accepted'}")


def _update_metadata(library_path: Path, **entries) -> None:
    """Rewrite the library with ``entries`` merged into its metadata (atomically)."""
    with np.load(library_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    metadata = json.loads(str(arrays["metadata"]))
    metadata.update(entries)
    arrays["metadata"] = np.array(json.dumps(metadata))
    tmp = library_path.with_name(library_path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, library_path)


def save(library_path: Path, library, rows, crops, repeats, seconds) -> None:
    _update_metadata(library_path, anchors=rows, anchor_seconds=round(seconds, 1),
                     anchor_scan_step_A=A_SRTIO3 / SCAN_GPTS, anchor_frozen_phonon_configs=ANCHOR_CONFIGS,
                     anchor_accept_r2=ACCEPT_R2, anchor_crystal="SrTiO3 [100], periodic 4x4 cells, one cell scanned")
    anchors_path = library_path.with_name("column_kernel_anchors.npz")
    np.savez_compressed(anchors_path, repeats=np.array(repeats), step_A=np.array(A_SRTIO3 / SCAN_GPTS), **crops)
    print(f"wrote the R² table into {library_path.name}, the crops to {anchors_path.name}")


def amorphous_carbon(box_A: float, thickness_A: float, rng, density_per_A3: float = 0.1003):
    """Amorphous C (2.0 g/cm³): a jittered cubic grid, so no two atoms overlap."""
    spacing = density_per_A3 ** (-1 / 3)
    nxy, nz = int(round(box_A / spacing)), int(round(thickness_A / spacing))
    grid = np.stack(np.meshgrid(np.arange(nxy), np.arange(nxy), np.arange(nz), indexing="ij"), -1).reshape(-1, 3)
    scale = np.array([box_A / nxy, box_A / nxy, thickness_A / nz])
    return (grid + 0.5 + rng.uniform(-0.3, 0.3, grid.shape)) * scale


def pt_on_carbon_anchor(library, kv: float = 300.0, conv: float = 20.0, thickness_A: float = 100.0) -> dict:
    """Line scans through a Pt atom on the entrance / exit surface of amorphous C, minus the bare support."""
    import ase

    abtem = bck._setup_abtem()
    box = bck.BOX_A
    carbon = amorphous_carbon(box, thickness_A, np.random.default_rng(bck.SEED))
    x = np.round(np.arange(-5.0, 5.001, 0.15), 4)
    scan = abtem.CustomScan(np.c_[box / 2 + x, np.full(len(x), box / 2)])
    profiles = {}
    for where, z in (("none", None), ("entrance", 0.3), ("exit", thickness_A + 0.3)):
        positions = carbon if z is None else np.vstack([carbon, [[box / 2, box / 2, z]]])
        symbols = "C" * len(carbon) + ("" if z is None else "Pt")
        atoms = ase.Atoms(symbols, positions=positions, cell=(box, box, thickness_A + 2.0), pbc=True)
        potential = abtem.Potential(atoms, sampling=bck.SAMPLING_A, slice_thickness=2.5, projection="infinite")
        probe = abtem.Probe(energy=kv * 1e3, semiangle_cutoff=conv)
        t = time.time()
        m = probe.scan(potential, scan=scan, detectors=abtem.PixelatedDetector(max_angle="cutoff")).compute()
        sig = bck.integrate_patterns(np.asarray(m.array, dtype=np.float64), m.sampling[-2:], kv, conv)
        profiles[where] = {"haadf": sig["haadf"], "abf": sig["abf"], "idpc": bck.idpc_from_dpc(sig["com_x"], x)}
        print(f"Pt on carbon, {where}: {time.time() - t:.0f} s", flush=True)
    report = {"kv": kv, "convergence_mrad": conv, "support_thickness_A": thickness_A, "line_step_A": 0.15}
    for det in ("haadf", "abf", "idpc"):
        noise = float(np.std(profiles["none"][det]))  # the bare support's own fluctuation along the line
        for where in ("entrance", "exit"):
            diff = profiles[where][det] - profiles["none"][det]
            report[f"{det}_{where}_contrast_over_support"] = round(float(np.abs(diff).max()) / noise, 2)
            report[f"{det}_{where}_fwhm_A"] = round(_fwhm(x, diff), 2)
        for depth in (0.0, thickness_A):
            k = library.profile("Pt", det, kv=kv, convergence_mrad=conv, thickness_A=library.thickness_A[0],
                                depth_A=depth)
            line = np.interp(np.abs(x), library.radius_A, k, right=0.0)
            report[f"{det}_kernel_depth{depth:g}_fwhm_A"] = round(_fwhm(x, line), 2)
            report[f"{det}_kernel_depth{depth:g}_peak"] = float(np.abs(line).max())
    print(json.dumps(report, indent=1))
    return report


def _fwhm(x: np.ndarray, line: np.ndarray) -> float:
    """Width (Å) of the region around the line's largest |value| above half of it."""
    mag = np.abs(line)
    i = int(np.argmax(mag))
    above = mag >= 0.5 * mag[i]
    lo, hi = i, i
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < len(x) - 1 and above[hi + 1]:
        hi += 1
    return float(x[hi] - x[lo] + (x[1] - x[0]))
