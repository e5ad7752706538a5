"""Build the column-kernel library (and its validation anchors) with abTEM multislice.

The only file of the project that imports abTEM (``pip install .[sim]``). It
line-scans ONE isolated atom column per (stack, kV, convergence, depth) in a
box large enough for the DPC tails, records the whole diffraction pattern at
every exit plane (thickness) and integrates it into every detector the
library holds, so that HAADF, BF, ABF and DPC/iDPC come from one run:

* HAADF, BF, ABF: the intensity inside an annulus (see :data:`DETECTORS_MRAD`),
  as a fraction of the incident beam, minus the same detector in vacuum (so
  a kernel is 0 far from its column and kernels add).
* DPC: the radial component of the diffraction pattern's centre of mass
  (mrad), the scan running along +x from the column centre. A radially
  symmetric column deflects the beam radially, so the 2D field is
  ``com(p) = dpc(|p|) p/|p|``.
* iDPC: the potential-like function whose gradient is that field. For a radial
  field it is the 1D integral ``idpc(r) = -∫_r^R dpc(r') dr'`` (mrad·Å), zero
  at the box edge ``R``; the minus sign makes columns bright (the beam is
  deflected towards the nucleus, so ``dpc < 0``).

Depth: the probe is focused on the entrance surface of the specimen; a column
whose own entrance lies ``depth`` below it (an adatom on the exit surface of a
support, a crystal under an amorphous layer) is reached by a probe that has
propagated ``depth`` further. We put that distance as ONE vacuum slice in front
of the column (Fresnel propagation is exact in vacuum); scattering by the
support itself is left out (it is a low-Z, amorphous, mostly-forward
scatterer; the Pt-on-carbon anchor measures what that leaves out).

Usage::

    pip install .[sim]            # abtem, ase
    python scripts/build_column_kernels.py                 # library (resumable: per-run parts)
    python scripts/build_column_kernels.py --anchors       # validate it, R² table into its metadata
    python scripts/build_column_kernels.py --quick --out /tmp/k.npz   # smoke test, ~1 min

Run it single-threaded and niced on shared machines (``nice -n 10``;
``OMP_NUM_THREADS=1``); it never uses more than one process.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "napari_atombench" / "core" / "data" / "column_kernels.npz"

#: One repeat of every stack along the beam (Å): the SrTiO3 lattice constant, so that
#: the anchors (SrTiO3 [100]) and the kernels have the same atoms per Å.
PERIOD_A = 3.905
#: Elements and mixed columns (atoms per repeat, z within the repeat as a fraction).
STACKS = {
    **{el: ((el, 0.25),) for el in ("B", "C", "N", "O", "Si", "S", "Ti", "Sr", "Mo", "W", "Pt", "Au")},
    "TiO": (("Ti", 0.75), ("O", 0.25)),
}
KV = (200, 300)
CONVERGENCE_MRAD = (20.0, 30.0)
#: Distance from the probe focus (the specimen's entrance surface) to the column's entrance.
DEPTHS_A = (0.0, 25.0, 50.0, 100.0)
#: Thicknesses in repeats (exit planes). Columns at depth > 0 only up to MAX_REPEATS_DEEP
#: (adatoms, thin layers under a support): thick columns are not found deep in a specimen.
REPEATS = (1, 2, 3, 5, 8, 12)
MAX_REPEATS_DEEP = 3
#: Scan radii (Å): fine where the probe is, coarse in the tails.
RADIUS_A = np.round(np.r_[np.arange(0.0, 2.0, 0.08), np.arange(2.0, 7.51, 0.25)], 4)
BOX_A = 16.0
SAMPLING_A = 0.05
#: Frozen-phonon displacement (Å, per direction) of every atom; ONE configuration.
FP_SIGMA_A = 0.08
SEED = 17
DETECTORS = ("haadf", "bf", "abf", "dpc", "idpc")
#: Annuli in mrad, as functions of the convergence semi-angle; HAADF up to the
#: anti-aliasing limit of the 0.05 Å grid at 300 kV (131 mrad), the same at 200 kV.
DETECTORS_MRAD = {"haadf": lambda a: (70.0, 130.0), "bf": lambda a: (0.0, 0.5 * a), "abf": lambda a: (0.5 * a, a)}

QUICK = dict(stacks=("Sr", "O", "TiO", "Pt"), kv=(300,), conv=(20.0,), depths=(0.0, 100.0), repeats=(1, 2, 3))


def _setup_abtem():
    import abtem

    abtem.config.set({"device": "cpu", "fft": "numpy", "dask.scheduler": "synchronous",
                      "local_diagnostics.progress_bar": False})
    return abtem


def _wavelength_A(kv: float) -> float:
    from abtem.core.energy import energy2wavelength

    return float(energy2wavelength(kv * 1e3))


def integrate_patterns(patterns: np.ndarray, dk_per_A: tuple[float, float], kv: float, conv_mrad: float) -> dict:
    """Detector signals of diffraction patterns ``(..., nkx, nky)`` (centred, k=0 at n//2).

    Returns {"haadf", "bf", "abf": fraction of the beam; "com_x", "com_y": mrad}.
    """
    lam = _wavelength_A(kv)
    nx, ny = patterns.shape[-2:]
    kx = (np.arange(nx) - nx // 2) * dk_per_A[0]
    ky = (np.arange(ny) - ny // 2) * dk_per_A[1]
    ax, ay = np.meshgrid(kx * lam * 1e3, ky * lam * 1e3, indexing="ij")
    angle = np.hypot(ax, ay)
    total = patterns.sum(axis=(-2, -1))
    out = {}
    for name, annulus in DETECTORS_MRAD.items():
        lo, hi = annulus(conv_mrad)
        mask = (angle >= lo) & (angle < hi)
        out[name] = (patterns * mask).sum(axis=(-2, -1))
    out["com_x"] = (patterns * ax).sum(axis=(-2, -1)) / total
    out["com_y"] = (patterns * ay).sum(axis=(-2, -1)) / total
    return out


def _column_atoms(stack: str, repeats: int, depth_A: float, *, thermal: bool = True):
    """The column's atoms, with ONE frozen-phonon configuration whose lateral centroid stays on the axis.

    A kernel must be the thermal mean of the column, which one random snapshot is not: with
    plain Gaussian displacements a single atom sits ~0.1 Å off the axis (the first atom of
    seed 17 at -0.18 Å, which cost the one-atom kernels a third of their peak). So the atoms
    of the first repeat stay on the axis and the lateral displacements of the following
    repeats come in opposite pairs (d, -d): the centroid is exactly on the axis for an odd
    number of repeats and off by at most |d|/n for an even number n, while every atom but the
    first is displaced (thermal diffuse scattering). z displacements are independent.
    """
    import ase

    rng = np.random.default_rng([SEED, list(STACKS).index(stack)])
    symbols, positions = [], []
    previous = {}
    for i in range(repeats):
        for m, (el, frac) in enumerate(STACKS[stack]):
            shift = rng.normal(0.0, FP_SIGMA_A, 3) if thermal else np.zeros(3)
            if i == 0:
                shift[:2] = 0.0
            elif i % 2 == 0:
                shift[:2] = -previous[m]
            previous[m] = shift[:2].copy()
            symbols.append(el)
            positions.append(np.array([BOX_A / 2, BOX_A / 2, depth_A + PERIOD_A * (i + frac)]) + shift)
    return ase.Atoms(symbols, positions=positions, cell=(BOX_A, BOX_A, depth_A + PERIOD_A * repeats), pbc=True)


def run_column(stack: str, kv: float, conv: float, depth_A: float, repeats: tuple[int, ...]) -> dict:
    """Line-scan one isolated column; detector profiles (n_repeats, n_radius) minus vacuum."""
    abtem = _setup_abtem()
    atoms = _column_atoms(stack, max(repeats), depth_A)
    slices = [PERIOD_A / 2] * (2 * max(repeats))
    planes = [2 * n - 1 for n in repeats]
    if depth_A > 0:  # one vacuum slice: exact free-space propagation over the depth
        slices = [depth_A] + slices
        planes = [p + 1 for p in planes]
    potential = abtem.Potential(atoms, sampling=SAMPLING_A, slice_thickness=tuple(slices),
                                exit_planes=tuple(planes), projection="infinite")
    probe = abtem.Probe(energy=kv * 1e3, semiangle_cutoff=conv)
    # along +x and -x: the one frozen-phonon configuration is not exactly symmetric about
    # the axis; the two half-lines are averaged
    signed = np.r_[RADIUS_A, -RADIUS_A[1:]]
    positions = np.c_[BOX_A / 2 + signed, np.full(len(signed), BOX_A / 2)]
    measured = probe.scan(potential, scan=abtem.CustomScan(positions),
                          detectors=abtem.PixelatedDetector(max_angle="cutoff")).compute()
    patterns = np.asarray(measured.array, dtype=np.float64).reshape(len(repeats), len(signed), *measured.shape[-2:])
    signals = integrate_patterns(patterns, measured.sampling[-2:], kv, conv)
    n = len(RADIUS_A)

    def halves(values):
        return values[:, :n], np.concatenate([values[:, :1], values[:, n:]], axis=1)

    vacuum = vacuum_levels(kv, conv)
    out = {name: 0.5 * sum(halves(signals[name])) - vacuum[name] for name in ("haadf", "bf", "abf")}
    plus, minus = halves(signals["com_x"])
    out["dpc"] = 0.5 * (plus - minus)
    out["dpc_perpendicular_max"] = float(np.abs(signals["com_y"]).max())
    out["dpc_asymmetry_max"] = float(np.abs(0.5 * (plus + minus)).max())
    out["idpc"] = idpc_from_dpc(out["dpc"], RADIUS_A)
    return out


def idpc_from_dpc(dpc: np.ndarray, radius_A: np.ndarray) -> np.ndarray:
    """``-∫_r^R dpc dr'`` (trapezoids) along the last axis: zero at the outermost radius."""
    steps = 0.5 * (dpc[..., 1:] + dpc[..., :-1]) * np.diff(radius_A)
    tail = np.concatenate([np.cumsum(steps[..., ::-1], axis=-1)[..., ::-1], np.zeros(dpc.shape[:-1] + (1,))], axis=-1)
    return -tail


_VACUUM: dict = {}


def vacuum_levels(kv: float, conv: float, extent_A: float = BOX_A) -> dict:
    """Detector signals of the probe alone (the level kernels are measured against) on a grid of ``extent_A``.

    The level depends on the grid: the detector edges cut the bright-field disc, whose
    discretisation changes with the reciprocal sampling 1/extent (BF: 0.262 of the beam in
    the 16 Å box, 0.25 in the continuum).
    """
    key = (kv, conv, extent_A)
    if key not in _VACUUM:
        abtem = _setup_abtem()
        gpts = int(round(extent_A / SAMPLING_A))
        probe = abtem.Probe(energy=kv * 1e3, semiangle_cutoff=conv, extent=extent_A, gpts=gpts)
        pattern = probe.build().diffraction_patterns(max_angle="cutoff").compute()
        arr = np.asarray(pattern.array, dtype=np.float64)
        signals = integrate_patterns(arr[None], pattern.sampling[-2:], kv, conv)
        _VACUUM[key] = {k: float(np.ravel(v)[0]) for k, v in signals.items()}
    return _VACUUM[key]


def _part_path(parts: Path, stack, kv, conv, depth) -> Path:
    return parts / f"{stack}_{kv}kV_{conv:g}mrad_{depth:g}A.npz"


def build(out: Path, grid: dict, parts: Path) -> None:
    """Every run of the grid (skipping runs whose part file exists in ``parts``), then the library file."""
    import abtem

    parts.mkdir(parents=True, exist_ok=True)
    jobs = [(s, kv, c, d) for s in grid["stacks"] for kv in grid["kv"] for c in grid["conv"] for d in grid["depths"]]
    t0 = time.time()
    for i, (stack, kv, conv, depth) in enumerate(jobs):
        part = _part_path(parts, stack, kv, conv, depth)
        if part.exists():
            continue
        repeats = grid["repeats"] if depth == 0 else tuple(r for r in grid["repeats"] if r <= MAX_REPEATS_DEEP)
        t = time.time()
        res = run_column(stack, kv, conv, depth, repeats)
        np.savez(part, repeats=np.array(repeats), seconds=time.time() - t,
                 dpc_perpendicular_max=res["dpc_perpendicular_max"],
                 dpc_asymmetry_max=res["dpc_asymmetry_max"], **{d: res[d] for d in DETECTORS})
        print(f"[{i + 1}/{len(jobs)}] {stack} {kv} kV {conv:g} mrad depth {depth:g} Å: "
              f"{time.time() - t:.1f} s (total {time.time() - t0:.0f} s)", flush=True)
    assemble(out, grid, parts, abtem.__version__)


def assemble(out: Path, grid: dict, parts: Path, abtem_version: str) -> None:
    """Gather the per-run parts into the library ``.npz`` (NaN where a run was not made)."""
    shape = (len(grid["stacks"]), len(grid["kv"]), len(grid["conv"]), len(grid["depths"]), len(grid["repeats"]),
             len(DETECTORS), len(RADIUS_A))
    profiles = np.full(shape, np.nan, dtype=np.float32)
    seconds, perpendicular, asymmetry = 0.0, 0.0, 0.0
    for a, stack in enumerate(grid["stacks"]):
        for b, kv in enumerate(grid["kv"]):
            for c, conv in enumerate(grid["conv"]):
                for d, depth in enumerate(grid["depths"]):
                    with np.load(_part_path(parts, stack, kv, conv, depth)) as part:
                        idx = [list(grid["repeats"]).index(r) for r in part["repeats"]]
                        for e, det in enumerate(DETECTORS):
                            profiles[a, b, c, d, idx, e] = part[det]
                        seconds += float(part["seconds"])
                        perpendicular = max(perpendicular, float(part["dpc_perpendicular_max"]))
                        asymmetry = max(asymmetry, float(part["dpc_asymmetry_max"]))
    vacuum = np.array([[[vacuum_levels(kv, c).get(det, 0.0) if det in DETECTORS_MRAD else 0.0 for det in DETECTORS]
                        for c in grid["conv"]] for kv in grid["kv"]], dtype=np.float64)
    metadata = {
        "format": "atombench column kernels", "version": 1,
        "stacks": {s: [[el, frac * PERIOD_A] for el, frac in STACKS[s]] for s in grid["stacks"]},
        "period_A": PERIOD_A, "detectors": list(DETECTORS),
        "detector_units": {"haadf": "fraction of beam", "bf": "fraction of beam", "abf": "fraction of beam",
                           "dpc": "mrad", "idpc": "mrad*A"},
        "detector_annuli_mrad": {k: f(1.0) if k == "haadf" else [f(1.0)[0], f(1.0)[1]] for k, f in DETECTORS_MRAD.items()},
        "detector_annuli_note": "haadf absolute; bf, abf in units of the convergence semi-angle",
        "box_A": BOX_A, "sampling_A": SAMPLING_A, "frozen_phonon_sigma_A": FP_SIGMA_A, "frozen_phonon_configs": 1,
        "seed": SEED, "frozen_phonon_scheme": "first repeat on the axis, lateral displacements in opposite pairs", "projection": "infinite", "slice_thickness_A": PERIOD_A / 2, "parametrization": "lobato",
        "max_repeats_deep": MAX_REPEATS_DEEP, "abtem_version": abtem_version,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "compute_seconds": round(seconds, 1), "dpc_perpendicular_max_mrad": perpendicular,
        "dpc_asymmetry_max_mrad": asymmetry, "anchors": [],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(
        tmp, profiles=profiles, radius_A=RADIUS_A.astype(np.float64), stacks=np.array(grid["stacks"]),
        kv=np.array(grid["kv"], dtype=np.float64), convergence_mrad=np.array(grid["conv"], dtype=np.float64),
        depth_A=np.array(grid["depths"], dtype=np.float64),
        thickness_A=np.array(grid["repeats"], dtype=np.float64) * PERIOD_A,
        detectors=np.array(DETECTORS), vacuum=vacuum, metadata=np.array(json.dumps(metadata)),
    )
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), compute {seconds:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--parts", type=Path, default=Path(tempfile.gettempdir()) / "atombench_column_kernels.parts",
                        help="folder of the per-run results (rerunning skips the runs found there)")
    parser.add_argument("--quick", action="store_true", help="a tiny grid (smoke test)")
    parser.add_argument("--anchors", action="store_true", help="validate the library in --out against full multislice")
    parser.add_argument("--anchor-repeats", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--pt-on-carbon", action="store_true", help="with --anchors: the Pt-on-amorphous-C anchor too")
    args = parser.parse_args(argv)
    if args.anchors:
        from build_column_anchors import run_anchors  # sibling script (abTEM too)

        return run_anchors(args.out, args.anchor_repeats, pt_on_carbon=args.pt_on_carbon)
    grid = dict(QUICK) if args.quick else dict(stacks=tuple(STACKS), kv=KV, conv=CONVERGENCE_MRAD,
                                                 depths=DEPTHS_A, repeats=REPEATS)
    t0 = time.time()
    build(args.out, grid, args.parts / ("quick" if args.quick else "full"))
    print(f"wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
