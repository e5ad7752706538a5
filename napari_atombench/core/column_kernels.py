"""Image formation from multislice column kernels (HAADF, BF, ABF, DPC, iDPC).

A *column kernel* is the radial response of ONE isolated atom column to the
scanned probe: the detector signal with the probe at distance ``r`` from the
column, minus the same detector in vacuum. ``scripts/build_column_kernels.py``
computes them with abTEM multislice (one frozen-phonon configuration) for
element stacks × kV × convergence × depth × thickness; this module reads that
library and renders scenes as the sum of the kernels of their columns, each
with its own thickness and depth (an adatom on the exit surface of a thick
support sees a probe that is defocused by the support's thickness), plus an
incoherent source-size blur. Sums of kernels reproduce full multislice where
the signal is close to linear in the columns; the library's metadata holds the
R² of that against full multislice anchors and :meth:`ColumnKernelLibrary.accepted`
says which detectors passed (R² ≥ :data:`ACCEPT_R2`).

DPC is a vector field: a radially symmetric column deflects the beam's centre
of mass by ``dpc(r)`` (mrad, negative: towards the column) along the radial
direction, so ``dpc_x`` and ``dpc_y`` are rendered as ``dpc(r) Δx/r`` and
``dpc(r) Δy/r`` (x = column index, y = row index). iDPC is the integrated
field (mrad·Å), columns bright.

Positions are (row, col) in pixels. NumPy/SciPy only.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .file_checks import FileFormatError, _human_bytes, _regular_file, file_errors

__all__ = [
    "ACCEPT_R2",
    "ColumnKernelLibrary",
    "DEFAULT_MAX_KERNEL_BYTES",
    "KernelImage",
    "KernelOptions",
    "PACKAGED_LIBRARY",
    "RENDER_DETECTORS",
    "packaged_library",
    "probe_fwhm_A",
    "render_kernel_image",
    "stack_for_species",
]

#: Kernel scenes are trusted for a detector only where every anchor reached this R².
ACCEPT_R2 = 0.9
#: Largest library file (and largest total of its uncompressed arrays) read.
DEFAULT_MAX_KERNEL_BYTES = 64 * 2**20
#: The library built with abTEM and shipped with the package.
PACKAGED_LIBRARY = Path(__file__).with_name("data") / "column_kernels.npz"
#: Detectors an image can be rendered in; ``dpc_x``/``dpc_y`` use the library's ``dpc``.
RENDER_DETECTORS = ("haadf", "bf", "abf", "idpc", "dpc_x", "dpc_y")
#: A column is scored by its kernel's largest magnitude within this radius of its centre.
PEAK_RADIUS_A = 1.0

_ELEMENTS = ("H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
             "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
             "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi").split()
_KEYS = ("profiles", "radius_A", "stacks", "kv", "convergence_mrad", "depth_A", "thickness_A", "detectors",
         "vacuum", "metadata")


def stack_for_species(species: str) -> tuple[str, int]:
    """The library stack and atoms-per-repeat factor of a simulator species label.

    ``"Sr"``, ``"TiO"`` -> themselves; ``"Z78"`` (a simulated adatom) -> ``"Pt"``;
    ``"S2"`` (two atoms in one column per repeat) -> ``("S", 2)``; a trailing
    ``"*"`` (substituted column) is ignored.
    """
    label = str(species).rstrip("*")
    match = re.fullmatch(r"Z(\d+)", label)
    if match and 1 <= int(match.group(1)) <= len(_ELEMENTS):
        return _ELEMENTS[int(match.group(1)) - 1], 1
    match = re.fullmatch(r"([A-Z][a-z]?)(\d+)", label)
    if match and match.group(1) in _ELEMENTS:
        return match.group(1), int(match.group(2))
    return label, 1


@dataclass
class ColumnKernelLibrary:
    """Radial column kernels on a common radius grid, with their axes.

    Attributes
    ----------
    profiles : ndarray of float32, shape (stacks, kv, convergence, depth, thickness, detectors, radius)
        Detector signal minus vacuum; NaN where no run was made (deep, thick columns).
    radius_A, kv, convergence_mrad, depth_A, thickness_A : ndarray of float64
        The axes (increasing).
    stacks, detectors : tuple of str
    vacuum : ndarray of float64, shape (kv, convergence, detectors)
        Detector signal of the probe in vacuum (fraction of the beam; 0 for DPC, iDPC).
    metadata : dict
        Provenance (abTEM version, parameters, date, compute time) and the
        validation anchors (``metadata["anchors"]``: dicts with ``detector``,
        ``kv``, ``convergence_mrad``, ``thickness_A``, ``r2``).
    source : str
        The file it was read from.
    """

    profiles: np.ndarray
    radius_A: np.ndarray
    stacks: tuple[str, ...]
    kv: np.ndarray
    convergence_mrad: np.ndarray
    depth_A: np.ndarray
    thickness_A: np.ndarray
    detectors: tuple[str, ...]
    vacuum: np.ndarray
    metadata: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike, max_bytes: int | None = None) -> "ColumnKernelLibrary":
        """Read a library ``.npz`` after checking its size (no pickles).

        Raises
        ------
        FileNotFoundError
        FileFormatError
            One line naming the file: not a regular file, too large, not a
            ``.npz``, a missing or malformed array.
        """
        path = Path(path)
        limit = DEFAULT_MAX_KERNEL_BYTES if max_bytes is None else int(max_bytes)
        size = _regular_file(path, "column-kernel library")
        if size > limit:
            raise FileFormatError(f"{path.name}: {_human_bytes(size)}, over the {_human_bytes(limit)} limit "
                                  "for a column-kernel library")
        with file_errors(path, "a column-kernel library (.npz)"):
            if not zipfile.is_zipfile(path):
                raise FileFormatError(f"{path.name}: not a column-kernel library (.npz): it is not a zip archive")
            with zipfile.ZipFile(path) as archive:  # compressed members could unpack to far more
                unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > limit:
                raise FileFormatError(f"{path.name}: its arrays unpack to {_human_bytes(unpacked)}, over the "
                                      f"{_human_bytes(limit)} limit for a column-kernel library")
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in _KEYS if k not in data.files]
                if missing:
                    raise FileFormatError(f"{path.name}: not a column-kernel library: no {', '.join(missing)} array")
                arrays = {k: np.asarray(data[k]) for k in _KEYS}
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, a: dict, path: Path) -> "ColumnKernelLibrary":
        def bad(what: str) -> FileFormatError:
            return FileFormatError(f"{path.name}: malformed column-kernel library: {what}")

        try:
            metadata = json.loads(str(a["metadata"]))
        except ValueError:
            raise bad("metadata is not JSON") from None
        if not isinstance(metadata, dict):
            raise bad("metadata is not a JSON object")
        axes = {}
        for name in ("radius_A", "kv", "convergence_mrad", "depth_A", "thickness_A"):
            axis = a[name]
            if axis.ndim != 1 or axis.size == 0 or axis.dtype.kind not in "iuf" or not np.all(np.isfinite(axis)):
                raise bad(f"{name} is not a 1D array of finite numbers")
            if np.any(np.diff(axis) <= 0):
                raise bad(f"{name} is not increasing")
            axes[name] = axis.astype(np.float64)
        stacks, detectors = a["stacks"], a["detectors"]
        if stacks.dtype.kind != "U" or detectors.dtype.kind != "U" or stacks.ndim != 1 or detectors.ndim != 1:
            raise bad("stacks and detectors must be 1D arrays of names")
        profiles, vacuum = a["profiles"], a["vacuum"]
        shape = (len(stacks), len(axes["kv"]), len(axes["convergence_mrad"]), len(axes["depth_A"]),
                 len(axes["thickness_A"]), len(detectors), len(axes["radius_A"]))
        if profiles.shape != shape or profiles.dtype.kind != "f":
            raise bad(f"profiles have shape {profiles.shape} {profiles.dtype}, the axes need {shape} floats")
        if vacuum.shape != shape[1:3] + (len(detectors),) or not np.all(np.isfinite(vacuum)):
            raise bad(f"vacuum has shape {vacuum.shape}, the axes need {shape[1:3] + (len(detectors),)}")
        if np.any(np.isinf(profiles)):
            raise bad("profiles hold infinite values")
        if axes["radius_A"][0] != 0.0:
            raise bad("radius_A must start at 0")
        return cls(profiles=profiles, stacks=tuple(map(str, stacks)), detectors=tuple(map(str, detectors)),
                   vacuum=vacuum.astype(np.float64), metadata=metadata, source=str(path), **axes)

    # ---------------------------------------------------------------- queries

    def _index(self, axis_name: str, value: float) -> int:
        axis = getattr(self, axis_name)
        hits = np.flatnonzero(np.isclose(axis, value, rtol=0, atol=1e-6))
        if not len(hits):
            raise ValueError(f"{axis_name}={value:g} is not in the column-kernel library "
                             f"({Path(self.source).name}); it holds {', '.join(f'{v:g}' for v in axis)}")
        return int(hits[0])

    def profile(self, stack: str, detector: str, *, kv: float, convergence_mrad: float, thickness_A: float,
                depth_A: float = 0.0) -> np.ndarray:
        """One kernel on :attr:`radius_A`, interpolated linearly in thickness and depth.

        ``kv`` and ``convergence_mrad`` must be values the library holds;
        thickness and depth must lie within its axes (and a deep column
        within the thicknesses computed at that depth).
        """
        if stack not in self.stacks:
            raise ValueError(f"no kernels for column {stack!r} in {Path(self.source).name}; "
                             f"it holds {', '.join(self.stacks)}")
        if detector not in self.detectors:
            raise ValueError(f"detector must be one of {', '.join(self.detectors)}, not {detector!r}")
        table = self.profiles[self.stacks.index(stack), self._index("kv", kv),
                              self._index("convergence_mrad", convergence_mrad), :, :, self.detectors.index(detector)]
        (d0, d1), wd = _bracket(self.depth_A, depth_A, "depth_A")
        (t0, t1), wt = _bracket(self.thickness_A, thickness_A, "thickness_A")
        corners = table[[d0, d0, d1, d1], [t0, t1, t0, t1]].astype(np.float64)
        weights = np.array([(1 - wd) * (1 - wt), (1 - wd) * wt, wd * (1 - wt), wd * wt])
        used = weights > 0
        if np.isnan(corners[used]).any():
            deep = int(self.metadata.get("max_repeats_deep", 0)) * float(self.metadata.get("period_A", 0.0))
            raise ValueError(f"no kernel for a {thickness_A:g} Å thick column {depth_A:g} Å deep in "
                             f"{Path(self.source).name}: below the surface it holds columns up to {deep:g} Å thick")
        return (weights[used, None] * corners[used]).sum(axis=0)

    def vacuum_level(self, detector: str, *, kv: float, convergence_mrad: float) -> float:
        """The signal of ``detector`` in vacuum (0 for ``dpc``, ``idpc``)."""
        return float(self.vacuum[self._index("kv", kv), self._index("convergence_mrad", convergence_mrad),
                                 self.detectors.index(detector)])

    def anchors(self) -> list[dict]:
        """The validation anchors: R² of kernel sums against full multislice."""
        return list(self.metadata.get("anchors", []))

    def accepted(self, detector: str, *, kv: float | None = None, convergence_mrad: float | None = None) -> bool:
        """Whether kernel scenes in ``detector`` passed validation (every matching anchor R² ≥ :data:`ACCEPT_R2`).

        ``dpc_x``/``dpc_y`` are judged as ``dpc``. False where no anchor was run.
        """
        name = "dpc" if detector in ("dpc_x", "dpc_y") else detector
        rows = [a for a in self.anchors() if a.get("detector") == name
                and (kv is None or np.isclose(a.get("kv", np.nan), kv))
                and (convergence_mrad is None or np.isclose(a.get("convergence_mrad", np.nan), convergence_mrad))]
        return bool(rows) and all(float(a.get("r2", -np.inf)) >= ACCEPT_R2 for a in rows)


def _bracket(axis: np.ndarray, value: float, name: str) -> tuple[tuple[int, int], float]:
    """Neighbouring indices of ``value`` on ``axis`` and the weight of the upper one."""
    value = float(value)
    if not (np.isfinite(value) and axis[0] - 1e-9 <= value <= axis[-1] + 1e-9):
        raise ValueError(f"{name}={value:g} is outside the column-kernel library ({axis[0]:g} to {axis[-1]:g})")
    if len(axis) == 1:
        return (0, 0), 0.0
    hi = int(np.clip(np.searchsorted(axis, value), 1, len(axis) - 1))
    weight = float(np.clip((value - axis[hi - 1]) / (axis[hi] - axis[hi - 1]), 0.0, 1.0))
    return (hi - 1, hi), weight


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> ColumnKernelLibrary:
    return ColumnKernelLibrary.load(path)


def packaged_library() -> ColumnKernelLibrary:
    """The library shipped with the package (read once)."""
    return _load_cached(str(PACKAGED_LIBRARY), PACKAGED_LIBRARY.stat().st_mtime_ns if PACKAGED_LIBRARY.exists() else 0)


@dataclass
class KernelImage:
    """A rendered kernel scene.

    Attributes
    ----------
    image : ndarray of float64, shape (rows, cols)
        Vacuum level plus the sum of the column kernels (fraction of the beam,
        mrad for ``dpc_x``/``dpc_y``, mrad·Å for ``idpc``), source blur applied.
    peak_contrast : ndarray of float64, shape (N,)
        Each column's kernel magnitude: its largest ``|kernel|`` within
        :data:`PEAK_RADIUS_A` of its centre (anywhere for DPC), times its amplitude.
    detectable : ndarray of bool, shape (N,)
        ``peak_contrast >= detectable_fraction * peak_contrast.max()``.
    """

    image: np.ndarray
    peak_contrast: np.ndarray
    detectable: np.ndarray


# over 80 lines only by its numpydoc docstring (the code is under 80)
def render_kernel_image(
    shape: tuple[int, int],
    positions_rc: np.ndarray,
    species: Sequence[str],
    library: ColumnKernelLibrary,
    *,
    detector: str,
    pixel_size_A: float,
    kv: float,
    convergence_mrad: float,
    thickness_A: float | np.ndarray,
    depth_A: float | np.ndarray = 0.0,
    amplitudes: np.ndarray | None = None,
    source_size_pm: float = 0.0,
    detectable_fraction: float = 0.1,
    dx: np.ndarray | None = None,
    dy: np.ndarray | None = None,
) -> KernelImage:
    """Sum of the columns' multislice kernels sampled at the (optionally distorted) pixel centres.

    Parameters
    ----------
    shape : (rows, cols)
    positions_rc : ndarray, shape (N, 2)
        Column centres (row, col) in pixels.
    species : sequence of str, length N
        Simulator species labels, mapped to library stacks by :func:`stack_for_species`.
    library : ColumnKernelLibrary
    detector : {"haadf", "bf", "abf", "idpc", "dpc_x", "dpc_y"}
    pixel_size_A : float
    kv, convergence_mrad : float
        Values the library holds.
    thickness_A : float or ndarray, shape (N,)
        Column thickness along the beam (a ``"S2"`` column counts twice).
    depth_A : float or ndarray, shape (N,)
        Distance from the probe focus (the specimen's entrance surface) to the
        column's entrance surface: 0 on top, the support's thickness for an
        atom on its exit surface.
    amplitudes : ndarray, shape (N,), optional
        Factors on the kernels (e.g. substituted columns); 1 by default.
    source_size_pm : float
        FWHM of the Gaussian effective source (incoherent blur of the image).
    detectable_fraction : float
        A column is detectable when its peak contrast is at least this
        fraction of the scene's largest.
    dx : ndarray, shape (rows, cols), optional
        Fast-scan beam offset at each pixel (pixels).
    dy : ndarray, shape (rows,), optional
        Slow-scan beam offset of each line (pixels).

    Returns
    -------
    KernelImage
    """
    from scipy.ndimage import gaussian_filter

    from .image_formation import FWHM_PER_SIGMA

    if detector not in RENDER_DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(RENDER_DETECTORS)}, not {detector!r}")
    if not (np.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise ValueError(f"pixel_size_A must be positive, not {pixel_size_A!r}")
    if not (np.isfinite(source_size_pm) and source_size_pm >= 0):
        raise ValueError(f"source_size_pm must be 0 or positive, not {source_size_pm!r}")
    if not 0 <= detectable_fraction <= 1:
        raise ValueError(f"detectable_fraction must be from 0 to 1, not {detectable_fraction!r}")
    rows, cols = int(shape[0]), int(shape[1])
    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    n = len(positions_rc)
    species = [str(s) for s in species]
    if len(species) != n:
        raise ValueError(f"species has {len(species)} labels for {n} columns")
    thickness_A = _per_column(thickness_A, n, "thickness_A")
    depth_A = _per_column(depth_A, n, "depth_A")
    amplitudes = _per_column(1.0 if amplitudes is None else amplitudes, n, "amplitudes")
    name = "dpc" if detector.startswith("dpc_") else detector
    kernels = np.zeros((n, len(library.radius_A)))
    keys: dict[tuple, np.ndarray] = {}
    for i, label in enumerate(species):
        stack, factor = stack_for_species(label)
        key = (stack, factor * thickness_A[i], depth_A[i])
        if key not in keys:
            keys[key] = library.profile(stack, name, kv=kv, convergence_mrad=convergence_mrad,
                                        thickness_A=key[1], depth_A=key[2])
        kernels[i] = amplitudes[i] * keys[key]
    near = library.radius_A <= (library.radius_A[-1] if name == "dpc" else PEAK_RADIUS_A)
    peak = np.abs(kernels[:, near]).max(axis=1) if n else np.zeros(0)
    vacuum = library.vacuum_level(name, kv=kv, convergence_mrad=convergence_mrad)
    # the window ends where every kernel has fallen below 1e-4 of the largest (~3.8 Å for HAADF,
    # 5-6 Å for the others): below what one frozen-phonon configuration resolves anyway
    significant = np.abs(kernels).max(axis=0, initial=0.0) > 1e-4 * np.abs(kernels).max(initial=0.0)
    last = min(int(np.flatnonzero(significant).max(initial=0)) + 2, len(library.radius_A))
    image = _sum_kernels((rows, cols), positions_rc, kernels[:, :last], library.radius_A[:last] / pixel_size_A,
                         detector, dx, dy)
    if source_size_pm > 0:
        image = gaussian_filter(image, source_size_pm / 100.0 / FWHM_PER_SIGMA / pixel_size_A, mode="nearest")
    detectable = peak >= detectable_fraction * peak.max() if n else np.zeros(0, bool)
    return KernelImage(image=image + vacuum, peak_contrast=peak, detectable=detectable)


def _per_column(value, n: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be one finite number or one per column ({n}), got shape {array.shape}")
    return array


def _sum_kernels(shape, positions_rc, kernels, radius_px, detector, dx, dy, chunk_pixels: int = 4_000_000):
    """Accumulate each column's radial kernel over a window around it (beam at the distorted pixel centres)."""
    rows, cols = shape
    distorted = dx is not None or dy is not None
    dx = np.zeros(shape) if dx is None else np.asarray(dx, dtype=float)
    dy = np.zeros(rows) if dy is None else np.asarray(dy, dtype=float)
    spread = float(np.ptp(dx)) + float(np.ptp(dy)) + float(np.abs(dx).max(initial=0)) + float(np.abs(dy).max(initial=0))
    half = int(np.ceil(radius_px[-1] + spread)) + 1
    offsets = np.arange(-half, half + 1)
    image = np.zeros(rows * cols)
    step = max(1, chunk_pixels // len(offsets) ** 2)
    for start in range(0, len(positions_rc), step):
        pos, ker = positions_rc[start:start + step], kernels[start:start + step]
        rr = np.round(pos[:, 0]).astype(int)[:, None] + offsets[None, :]
        cc = np.round(pos[:, 1]).astype(int)[:, None] + offsets[None, :]
        r_in, c_in = (rr >= 0) & (rr < rows), (cc >= 0) & (cc < cols)
        rr_f, cc_f = np.clip(rr, 0, rows - 1), np.clip(cc, 0, cols - 1)
        beam_r = (rr + dy[rr_f])[:, :, None] - pos[:, 0, None, None]
        if distorted:
            beam_c = cc[:, None, :] + dx[rr_f[:, :, None], cc_f[:, None, :]] - pos[:, 1, None, None]
        else:  # (N, 1, w): broadcast against the rows
            beam_c = (cc - pos[:, 1, None])[:, None, :]
        dist = np.hypot(beam_r, beam_c)
        # one interpolation for all: column i's distances shifted into its own segment of a joined table
        span = radius_px[-1] + 1.0
        segments = np.arange(len(pos))[:, None] * span
        table_r = np.concatenate([segments + radius_px[None, :], segments + radius_px[-1] + 0.5], axis=1)
        table_v = np.concatenate([ker, np.zeros((len(pos), 1))], axis=1)
        values = np.interp(dist + segments[:, :, None], table_r.ravel(), table_v.ravel())
        values[dist > radius_px[-1]] = 0.0
        if detector in ("dpc_x", "dpc_y"):  # the radial deflection's component along x (columns) or y (rows)
            values *= np.divide(beam_c if detector == "dpc_x" else beam_r, dist, out=np.zeros_like(dist), where=dist > 0)
        inside = r_in[:, :, None] & c_in[:, None, :]
        flat = (rr_f[:, :, None] * cols + cc_f[:, None, :])[inside]
        image += np.bincount(flat, weights=values[inside], minlength=rows * cols)
    return image.reshape(shape)


def probe_fwhm_A(kv: float, convergence_mrad: float) -> float:
    """FWHM of the aberration-free probe (Airy disc, 0.51 λ/α) in Å."""
    volts = float(kv) * 1e3
    wavelength_A = 12.2643 / np.sqrt(volts * (1.0 + 0.97848e-6 * volts))  # relativistic
    return 0.51 * wavelength_A / (float(convergence_mrad) * 1e-3)


@dataclass(frozen=True)
class KernelOptions:
    """How :func:`~napari_atombench.core.simulate.simulate` renders with column kernels.

    Attributes
    ----------
    detector : {"haadf", "bf", "abf", "idpc"}
    kv, convergence_mrad : float
        Values the library holds.
    thickness_A : float
        Thickness of the crystal's columns.
    adatom_depth_A : float
        Depth of the single atoms below the probe focus (the entrance
        surface): 0 on top, the support's thickness on its exit surface.
    source_size_pm : float
        FWHM of the effective source (incoherent blur).
    library : ColumnKernelLibrary, path or None
        None: the packaged library.
    require_accepted : bool
        Refuse a detector whose kernel sums failed validation against full
        multislice (see :meth:`ColumnKernelLibrary.accepted`).
    """

    detector: str = "haadf"
    kv: float = 300.0
    convergence_mrad: float = 20.0
    thickness_A: float = 3.905 * 5
    adatom_depth_A: float = 0.0
    source_size_pm: float = 0.0
    library: ColumnKernelLibrary | str | os.PathLike | None = None
    require_accepted: bool = True

    def load_library(self) -> ColumnKernelLibrary:
        """The library these options name, checked against ``detector`` and ``require_accepted``."""
        if self.detector not in ("haadf", "bf", "abf", "idpc"):
            raise ValueError(f"kernel detector must be 'haadf', 'bf', 'abf' or 'idpc' in a simulated image, "
                             f"not {self.detector!r}")
        if isinstance(self.library, ColumnKernelLibrary):
            library = self.library
        elif self.library is None:
            library = packaged_library()
        else:
            library = ColumnKernelLibrary.load(self.library)
        library._index("kv", self.kv), library._index("convergence_mrad", self.convergence_mrad)
        if self.require_accepted and not library.accepted(self.detector, kv=self.kv,
                                                          convergence_mrad=self.convergence_mrad):
            scores = [a["r2"] for a in library.anchors() if a.get("detector") == self.detector
                      and np.isclose(a.get("kv", np.nan), self.kv)
                      and np.isclose(a.get("convergence_mrad", np.nan), self.convergence_mrad)]
            verdict = (f"did not pass validation against full multislice (R² {min(scores):.2f} < {ACCEPT_R2})"
                       if scores else "have no validation anchor against full multislice")
            raise ValueError(f"{Path(library.source).name}: {self.detector} kernel sums at {self.kv:g} kV, "
                             f"{self.convergence_mrad:g} mrad {verdict}; pass require_accepted=False to render "
                             "them anyway")
        return library

    def as_dict(self) -> dict:
        """JSON-serialisable (the library by its file)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        lib = self.library
        out["library"] = lib.source if isinstance(lib, ColumnKernelLibrary) else (None if lib is None else str(lib))
        return out
