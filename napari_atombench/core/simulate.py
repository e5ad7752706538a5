"""Synthetic HR-STEM images with exactly known column positions.

An incoherent-imaging model, fast enough to generate training data on the fly:

* **Specimen**: a crystal projection (:class:`Crystal`: a 2D cell and its atom
  columns) tiled over the field of view, optionally with point defects
  (vacancies, substitutions), a grain boundary or an interface to a second
  crystal, single atoms scattered on an amorphous support, or a random
  lattice (:func:`random_crystal`) for training diversity.
* **Image formation**: each column contributes a Gaussian probe image whose
  height is proportional to the sum of ``Z**n`` over its atoms (HAADF
  Z-contrast, ``n`` ≈ 1.7); the probe's FWHM is the resolution. ``mode="abf"``
  inverts the contrast (dark columns on a bright background).
* **Quality knobs**, in physical units and named after the benchmark's radar
  axes (see :func:`simulate`): ``pixel_size_pm``, ``resolution_pm``,
  ``contrast``, ``dose_e_per_A2`` (Poisson), ``psnr_db`` (Gaussian), read
  noise, background and its gradient, and scan distortions (``random_drift``,
  ``flyback_error``, ``line_jitter``).

Scan distortions are applied physically: pixel ``(r, c)`` is recorded with the
beam at specimen position ``(r + dy[r], c + dx[r, c])`` (rows are the slow scan
direction), so each column is rendered analytically at the distorted sampling
points, and its ground-truth position is the centroid of its own rendered
contribution (where a careful labeller would put it).

Positions are (row, col) in pixels; pixel centres are at integer coordinates.
This module imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "CRYSTALS",
    "Crystal",
    "GRAPHENE",
    "SI_110",
    "SRTIO3_100",
    "SRTIO3_110",
    "SimulatedImage",
    "WS2_MONOLAYER",
    "KNOBS",
    "degradation_series",
    "get_crystal",
    "lattice_positions",
    "random_crystal",
    "render_columns",
    "simulate",
    "simulate_crystal",
]

#: FWHM of a Gaussian = this many sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class Crystal:
    """A projected crystal: a 2D cell and its atom columns.

    Attributes
    ----------
    name : str
    cell_A : tuple of two (x, y) vectors in Å
        Projected lattice vectors.
    basis : tuple of (u, v, species)
        Fractional column positions in the cell and the species label.
    column_atoms : dict of species -> tuple of atomic numbers
        The atoms stacked in one column (per projected repeat); the column's
        intensity is the sum of ``Z**n`` over them.
    """

    name: str
    cell_A: tuple[tuple[float, float], tuple[float, float]]
    basis: tuple[tuple[float, float, str], ...]
    column_atoms: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def column_weight(self, species: str, z_exponent: float) -> float:
        """Relative HAADF intensity of one column: sum of Z**n of its atoms."""
        return float(sum(z**z_exponent for z in self.column_atoms[species]))

    def cell_area_A2(self) -> float:
        (ax, ay), (bx, by) = self.cell_A
        return abs(ax * by - ay * bx)


#: SrTiO3 viewed along [100]: Sr columns at the cell corner, Ti-O columns at the
#: centre, pure O columns on the edges. a = 3.905 Å.
SRTIO3_100 = Crystal(
    name="SrTiO3 [100]",
    cell_A=((3.905, 0.0), (0.0, 3.905)),
    basis=((0.0, 0.0, "Sr"), (0.5, 0.5, "TiO"), (0.5, 0.0, "O"), (0.0, 0.5, "O")),
    column_atoms={"Sr": (38,), "TiO": (22, 8), "O": (8,)},
)

#: A perovskite (SrTiO3) viewed along [110]: a rectangular a√2 x a cell with
#: Sr-O columns, pure Ti columns and pure O columns.
SRTIO3_110 = Crystal(
    name="SrTiO3 [110]",
    cell_A=((3.905 * np.sqrt(2.0), 0.0), (0.0, 3.905)),
    basis=(
        (0.0, 0.0, "SrO"),
        (0.5, 0.0, "SrO"),
        (0.0, 0.5, "Ti"),
        (0.5, 0.5, "Ti"),
        (0.25, 0.5, "O"),
        (0.75, 0.5, "O"),
    ),
    column_atoms={"SrO": (38, 8), "Ti": (22,), "O": (8,)},
)

#: 2H-WS2 monolayer viewed along [001]: a honeycomb of W and S2 columns,
#: a = 3.18 Å, so neighbouring columns are a/sqrt(3) = 1.836 Å apart.
WS2_MONOLAYER = Crystal(
    name="WS2 monolayer",
    cell_A=((3.18, 0.0), (-1.59, 3.18 * np.sqrt(3.0) / 2.0)),
    basis=((0.0, 0.0, "W"), (1.0 / 3.0, 2.0 / 3.0, "S2")),
    column_atoms={"W": (74,), "S2": (16, 16)},
)

#: Graphene: a honeycomb of single carbon atoms, a = 2.46 Å (C-C 1.42 Å).
GRAPHENE = Crystal(
    name="graphene",
    cell_A=((2.46, 0.0), (-1.23, 2.46 * np.sqrt(3.0) / 2.0)),
    basis=((0.0, 0.0, "C"), (1.0 / 3.0, 2.0 / 3.0, "C")),
    column_atoms={"C": (6,)},
)

#: Si viewed along [110]: dumbbells a/4 = 1.358 Å apart along [001] in an
#: a/√2 x a cell (a = 5.431 Å).
SI_110 = Crystal(
    name="Si [110]",
    cell_A=((5.431 / np.sqrt(2.0), 0.0), (0.0, 5.431)),
    basis=((0.0, 0.0, "Si"), (0.0, 0.25, "Si"), (0.5, 0.5, "Si"), (0.5, 0.75, "Si")),
    column_atoms={"Si": (14,)},
)

#: Crystals known by name (CLI, benchmark recipes).
CRYSTALS: dict[str, Crystal] = {
    "srtio3_100": SRTIO3_100,
    "srtio3_110": SRTIO3_110,
    "ws2": WS2_MONOLAYER,
    "graphene": GRAPHENE,
    "si_110": SI_110,
}


def get_crystal(crystal: Crystal | str) -> Crystal:
    """A :class:`Crystal` from itself or its name in :data:`CRYSTALS`."""
    if isinstance(crystal, Crystal):
        return crystal
    try:
        return CRYSTALS[str(crystal).lower()]
    except KeyError:
        raise ValueError(f"unknown crystal {crystal!r}; known: {', '.join(CRYSTALS)}") from None


def random_crystal(seed: int | np.random.Generator = 0, *, min_separation_A: float = 1.3) -> Crystal:
    """A random 2D crystal projection for training diversity.

    Random oblique cell (sides 2.3–6 Å, angle 60–120°), 1–4 basis columns at
    random fractional positions at least ``min_separation_A`` apart (periodic
    images included), each with one to three random atoms (Z 6–83).

    Parameters
    ----------
    seed : int or numpy Generator
    min_separation_A : float

    Returns
    -------
    Crystal
    """
    rng = np.random.default_rng(seed)
    for _ in range(100):
        a = rng.uniform(2.3, 6.0)
        b = a * rng.uniform(0.7, 1.5)
        gamma = np.deg2rad(rng.uniform(60.0, 120.0))
        cell = np.array([[a, 0.0], [b * np.cos(gamma), b * np.sin(gamma)]])
        n_basis = int(rng.integers(1, 5))
        fractional: list[np.ndarray] = []
        for _ in range(40):
            if len(fractional) == n_basis:
                break
            uv = rng.uniform(0.0, 1.0, 2)
            if all(_periodic_distance_A(uv, other, cell) >= min_separation_A for other in fractional):
                fractional.append(uv)
        # the lattice itself must respect the minimum separation
        if min(np.linalg.norm(cell[0]), np.linalg.norm(cell[1]), np.linalg.norm(cell[0] - cell[1]),
               np.linalg.norm(cell[0] + cell[1])) < min_separation_A:
            continue
        basis = tuple((float(u), float(v), f"X{k}") for k, (u, v) in enumerate(fractional))
        atoms = {
            f"X{k}": tuple(int(z) for z in rng.integers(6, 84, int(rng.integers(1, 4))))
            for k in range(len(fractional))
        }
        return Crystal(
            name="random",
            cell_A=(tuple(cell[0]), tuple(cell[1])),  # type: ignore[arg-type]
            basis=basis,
            column_atoms=atoms,
        )
    raise RuntimeError("could not draw a random crystal")  # pragma: no cover - vanishingly rare


def _periodic_distance_A(uv1: np.ndarray, uv2: np.ndarray, cell: np.ndarray) -> float:
    d = np.asarray(uv1) - np.asarray(uv2)
    d = d - np.round(d)
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    return float(np.min(np.linalg.norm((d + shifts) @ cell, axis=1)))


@dataclass
class SimulatedImage:
    """A simulated image and its ground truth.

    Attributes
    ----------
    image : ndarray of float32, shape (H, W)
    positions_rc : ndarray of float64, shape (N, 2)
        Column centres (row, col) in pixels, inside the image: the labelled
        (visible) columns, at their apparent position after scan distortion.
    species : ndarray of str, shape (N,)
    pixel_size_A : float
    clean : ndarray of float32
        The noise-free image (the Poisson mean).
    parameters : dict
        Everything needed to make the image again (JSON-serialisable).
    weights : ndarray of float64, shape (N,)
        Relative intensity of each labelled column (brightest column of the
        scene = 1).
    """

    image: np.ndarray
    positions_rc: np.ndarray
    species: np.ndarray
    pixel_size_A: float
    clean: np.ndarray
    parameters: dict
    weights: np.ndarray | None = None


def lattice_positions(
    crystal: Crystal,
    shape: tuple[int, int],
    pixel_size_A: float,
    *,
    rotation_deg: float = 0.0,
    origin_rc: tuple[float, float] | None = None,
    margin_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Column positions of a crystal projection that fall inside an image.

    Parameters
    ----------
    crystal : Crystal
    shape : (rows, cols)
    pixel_size_A : float
        Å per pixel.
    rotation_deg : float
        In-plane rotation of the crystal, counter-clockwise as displayed.
    origin_rc : (row, col), optional
        Where the cell origin sits; the image centre by default.
    margin_px : float
        Keep only columns at least this far inside the image borders
        (negative: also columns up to ``-margin_px`` outside).

    Returns
    -------
    positions_rc : ndarray, shape (N, 2)
    species : ndarray of str, shape (N,)
    """
    rows, cols = shape
    if origin_rc is None:
        origin_rc = ((rows - 1) / 2.0, (cols - 1) / 2.0)
    theta = np.deg2rad(rotation_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    # cell vectors in pixels, as (x, y) with y pointing down the rows
    cell_px = (rotation @ np.asarray(crystal.cell_A, dtype=float).T).T / pixel_size_A
    # enough cells that the smallest cell height times the count covers the diagonal
    area = abs(cell_px[0, 0] * cell_px[1, 1] - cell_px[0, 1] * cell_px[1, 0])
    longest = max(np.linalg.norm(cell_px[0]), np.linalg.norm(cell_px[1]))
    extent = np.hypot(rows, cols) + 2.0 * abs(min(margin_px, 0.0)) + np.hypot(*origin_rc)
    reach = int(np.ceil(extent * longest / area)) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    positions, species = [], []
    for u, v, name in crystal.basis:
        xy = np.outer(i + u, cell_px[0]) + np.outer(j + v, cell_px[1])
        positions.append(np.column_stack([origin_rc[0] + xy[:, 1], origin_rc[1] + xy[:, 0]]))
        species.append(np.full(len(xy), name, dtype=object))
    positions_rc = np.concatenate(positions)
    names = np.concatenate(species)
    inside = (
        (positions_rc[:, 0] >= margin_px)
        & (positions_rc[:, 0] <= rows - 1 - margin_px)
        & (positions_rc[:, 1] >= margin_px)
        & (positions_rc[:, 1] <= cols - 1 - margin_px)
    )
    order = np.lexsort((positions_rc[inside, 1], positions_rc[inside, 0]))
    return positions_rc[inside][order], names[inside][order].astype(str)


def render_columns(
    shape: tuple[int, int],
    positions_rc: np.ndarray,
    amplitudes: np.ndarray,
    sigma_px: float | np.ndarray,
    *,
    background: float = 0.0,
    dx: np.ndarray | None = None,
    dy: np.ndarray | None = None,
    return_centroids: bool = False,
):
    """Sum of isotropic 2D Gaussians sampled at (optionally distorted) pixel centres.

    Each Gaussian is evaluated in a window of ±5 sigma (plus the largest
    distortion) around its centre, so the cost grows with the number of
    columns, not the image area squared.

    Parameters
    ----------
    shape : (rows, cols)
    positions_rc : ndarray, shape (N, 2)
        Specimen positions (row, col) in pixels.
    amplitudes : ndarray, shape (N,)
        Peak heights.
    sigma_px : float or ndarray, shape (N,)
        One sigma for all columns, or one per column.
    background : float
    dx : ndarray, shape (rows, cols), optional
        Fast-scan (column) offset of the beam at each pixel, in pixels.
    dy : ndarray, shape (rows,), optional
        Slow-scan (row) offset of the beam for each scan line, in pixels.
    return_centroids : bool
        Also return the centroid of each Gaussian's own rendered contribution
        (its apparent position in the distorted image; the window is not
        clipped at the image border for this).

    Returns
    -------
    image : ndarray of float32, shape ``shape``
    centroids_rc : ndarray of float64, shape (N, 2)
        Only with ``return_centroids=True``.
    """
    rows, cols = shape
    image = np.full(shape, background, dtype=np.float64)
    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    amplitudes = np.broadcast_to(np.asarray(amplitudes, dtype=float), (len(positions_rc),))
    distorted = dx is not None or dy is not None
    if dx is None:
        dx = np.zeros(shape)
    if dy is None:
        dy = np.zeros(rows)
    if np.ndim(sigma_px):  # one sigma per column: broadcast along the window axes
        sigma_px = np.asarray(sigma_px, dtype=float).reshape(-1, 1)
        if len(sigma_px) != len(positions_rc):
            raise ValueError(f"sigma_px has {len(sigma_px)} values for {len(positions_rc)} columns")
    base_half = int(np.ceil(5.0 * np.max(sigma_px, initial=0.0)))
    spread = 0.0
    if distorted:
        # the window is centred on the distorted position, so it only has to cover
        # how much the offsets vary within it (bounded by their full range)
        full_range = float(np.ptp(dx)) + float(np.ptp(dy))
        local = base_half * (
            float(np.max(np.abs(np.diff(dy)), initial=0.0))
            + float(np.max(np.abs(np.diff(dx, axis=0)), initial=0.0))
            + float(np.max(np.abs(np.diff(dx, axis=1)), initial=0.0))
        )
        spread = min(full_range, local) + 1.0
    half = int(np.ceil(base_half + spread))
    offsets = np.arange(-half, half + 1)
    inv2s2 = 0.5 / sigma_px**2
    n = len(positions_rc)
    if n == 0:
        out = image.astype(np.float32)
        return (out, positions_rc.copy()) if return_centroids else out
    r, c = positions_rc[:, 0], positions_rc[:, 1]
    # all windows at once: (N, w) row/col indices, (N, w, w) values
    if distorted:
        r_guess = r - dy[np.clip(np.round(r).astype(int), 0, rows - 1)]
    else:
        r_guess = r
    rr = np.round(r_guess).astype(int)[:, None] + offsets[None, :]
    rr_field = np.clip(rr, 0, rows - 1)
    if distorted:
        c_idx = np.clip(np.round(c).astype(int), 0, cols - 1)
        c_guess = c - dx[rr_field[:, half], c_idx]
    else:
        c_guess = c
    cc = np.round(c_guess).astype(int)[:, None] + offsets[None, :]
    if distorted:
        cc_field = np.clip(cc, 0, cols - 1)
        gr = np.exp(-inv2s2 * (rr + dy[rr_field] - r[:, None]) ** 2)
        shifted = cc[:, None, :] + dx[rr_field[:, :, None], cc_field[:, None, :]]
        inv2s2_3d = inv2s2[:, :, None] if np.ndim(inv2s2) else inv2s2
        window = gr[:, :, None] * np.exp(-inv2s2_3d * (shifted - c[:, None, None]) ** 2)
    else:
        gr = np.exp(-inv2s2 * (rr - r[:, None]) ** 2)
        gc = np.exp(-inv2s2 * (cc - c[:, None]) ** 2)
        window = gr[:, :, None] * gc[:, None, :]
    # accumulate on a canvas padded so that every window fits, then crop
    lo_r, hi_r = min(int(rr.min()), 0), max(int(rr.max()) + 1, rows)
    lo_c, hi_c = min(int(cc.min()), 0), max(int(cc.max()) + 1, cols)
    width = hi_c - lo_c
    flat = ((rr - lo_r) * width)[:, :, None] + (cc - lo_c)[:, None, :]
    values = window * np.asarray(amplitudes, dtype=float)[:, None, None]
    canvas = np.bincount(flat.ravel(), weights=values.ravel(), minlength=(hi_r - lo_r) * width)
    image += canvas.reshape(hi_r - lo_r, width)[-lo_r : -lo_r + rows, -lo_c : -lo_c + cols]
    if not return_centroids:
        return image.astype(np.float32)
    if distorted:
        total = np.maximum(window.sum(axis=(1, 2)), 1e-300)
        centroids = np.column_stack(
            [(window.sum(axis=2) * rr).sum(1) / total, (window.sum(axis=1) * cc).sum(1) / total]
        )
    else:
        centroids = positions_rc.copy()
    return image.astype(np.float32), centroids


# ----------------------------------------------------------------------------- knobs

#: The quality knobs of :func:`simulate` (names as in the benchmark's radar axes).
KNOBS = (
    "pixel_size_pm",
    "resolution_pm",
    "contrast",
    "dose_e_per_A2",
    "psnr_db",
    "read_noise",
    "background",
    "background_gradient",
    "random_drift",
    "flyback_error",
    "line_jitter",
    "shape",
)


def _scan_distortion(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    random_drift: float,
    flyback_error: float,
    line_jitter: float,
    flyback_decay_fraction: float = 0.125,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Beam offsets ``dx`` (rows, cols) and ``dy`` (rows,) in pixels, or None, None."""
    rows, cols = shape
    if random_drift <= 0 and flyback_error <= 0 and line_jitter <= 0:
        return None, None
    dx = np.zeros(shape)
    dy = np.zeros(rows)
    if random_drift > 0:
        # a smoothed random walk over scan lines (slow, correlated specimen drift), scaled
        # so that its standard deviation over the frame is ``random_drift`` px
        from scipy.ndimage import gaussian_filter1d

        walk = np.cumsum(rng.normal(size=(rows, 2)), axis=0)
        # specimen drift is slow: smooth out line-to-line roughness (that is line jitter)
        walk = gaussian_filter1d(walk, max(rows / 10.0, 1.0), axis=0, mode="nearest")
        walk -= walk.mean(axis=0)
        walk /= np.maximum(walk.std(axis=0), 1e-12)
        dx += random_drift * walk[:, 1:2]
        dy += random_drift * walk[:, 0]
    if line_jitter > 0:
        # independent offset of each scan line along the fast-scan direction
        dx += rng.normal(0.0, line_jitter, size=(rows, 1))
    if flyback_error > 0:
        # the beam has not settled after the flyback: an offset at the start of
        # each line that decays exponentially along the line
        amplitude = rng.normal(0.0, flyback_error, size=(rows, 1))
        decay = np.exp(-np.arange(cols) / max(flyback_decay_fraction * cols, 1.0))
        dx += amplitude * decay[None, :]
    return dx, dy


def _smooth_noise(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field_ = gaussian_filter(rng.normal(size=shape), max(sigma_px, 0.5), mode="wrap")
    return field_ / max(field_.std(), 1e-12)


def _columns(
    crystal: Crystal | None,
    shape: tuple[int, int],
    pixel_size_A: float,
    rng: np.random.Generator,
    *,
    rotation_deg: float,
    origin_rc: tuple[float, float] | None,
    margin_px: float,
    species: Iterable[str] | None,
    z_exponent: float,
    boundary: str | None,
    boundary_rotation_deg: float,
    boundary_crystal: Crystal | str | None,
    boundary_col: float | None,
    adatoms_per_nm2: float,
    adatom_z: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Specimen columns (positions, species, weight = sum Z**n) before defects."""
    rows, cols = shape
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def tile(xtal: Crystal, rotation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos, names = lattice_positions(
            xtal, shape, pixel_size_A, rotation_deg=rotation, origin_rc=origin_rc, margin_px=margin_px
        )
        if species is not None:
            keep = np.isin(names, list(species))
            pos, names = pos[keep], names[keep]
        per_species = {n: xtal.column_weight(n, z_exponent) for n in set(names.tolist())}
        weights = np.array([per_species[n] for n in names.tolist()], dtype=float)
        return pos, names, weights

    if crystal is not None:
        first = tile(crystal, rotation_deg)
        if boundary is None:
            chunks.append(first)
        else:
            if boundary == "grain":
                other_crystal, other_rotation = crystal, rotation_deg + boundary_rotation_deg
            elif boundary == "interface":
                if boundary_crystal is None:
                    raise ValueError("boundary='interface' needs boundary_crystal")
                other_crystal, other_rotation = get_crystal(boundary_crystal), rotation_deg + boundary_rotation_deg
            else:
                raise ValueError(f"boundary must be None, 'grain' or 'interface', not {boundary!r}")
            split = (cols - 1) / 2.0 if boundary_col is None else float(boundary_col)
            second = tile(other_crystal, other_rotation)
            left = first[0][:, 1] < split
            right = second[0][:, 1] >= split
            a = tuple(x[left] for x in first)
            b = tuple(x[right] for x in second)
            # drop columns of the second grain that overlap the first across the boundary
            if len(a[0]) and len(b[0]):
                from scipy.spatial import cKDTree

                min_sep_px = 0.9 / pixel_size_A
                dist, _ = cKDTree(a[0]).query(b[0], k=1)
                b = tuple(x[dist >= min_sep_px] for x in b)
            chunks.extend([a, b])  # type: ignore[list-item]
    if adatoms_per_nm2 > 0:
        area_nm2 = (rows + 2 * abs(margin_px)) * (cols + 2 * abs(margin_px)) * (pixel_size_A / 10.0) ** 2
        n = rng.poisson(adatoms_per_nm2 * area_nm2)
        pos = np.column_stack(
            [rng.uniform(margin_px, rows - 1 - margin_px, n), rng.uniform(margin_px, cols - 1 - margin_px, n)]
        )
        if len(pos) > 1:
            # no two single atoms closer than 2 Å
            from scipy.spatial import cKDTree

            pairs = cKDTree(pos).query_pairs(2.0 / pixel_size_A, output_type="ndarray")
            drop = np.unique(pairs[:, 1]) if len(pairs) else np.array([], int)
            pos = np.delete(pos, drop, axis=0)
        chunks.append((pos, np.full(len(pos), f"Z{adatom_z}"), np.full(len(pos), float(adatom_z) ** z_exponent)))
    if not chunks:
        return np.zeros((0, 2)), np.zeros(0, dtype=str), np.zeros(0)
    pos = np.concatenate([c[0] for c in chunks]).reshape(-1, 2)
    names = np.concatenate([c[1] for c in chunks]).astype(str)
    weights = np.concatenate([c[2] for c in chunks]).astype(float)
    return pos, names, weights


def simulate(
    crystal: Crystal | str | None = "srtio3_100",
    *,
    shape: tuple[int, int] | int = (256, 256),
    pixel_size_pm: float = 15.0,
    resolution_pm: float = 80.0,
    contrast: float = 1.0,
    background: float = 0.05,
    background_gradient: float = 0.0,
    gradient_angle_deg: float | None = None,
    dose_e_per_A2: float | None = None,
    psnr_db: float | None = None,
    read_noise: float = 0.0,
    random_drift: float = 0.0,
    flyback_error: float = 0.0,
    line_jitter: float = 0.0,
    z_exponent: float = 1.7,
    mode: str = "haadf",
    species: Iterable[str] | None = None,
    label_min_weight: float = 0.1,
    rotation_deg: float = 0.0,
    origin_rc: tuple[float, float] | None = None,
    vacancy_fraction: float = 0.0,
    substitution_fraction: float = 0.0,
    substitution_weight: float = 1.6,
    boundary: str | None = None,
    boundary_rotation_deg: float = 25.0,
    boundary_crystal: Crystal | str | None = None,
    boundary_col: float | None = None,
    adatoms_per_nm2: float = 0.0,
    adatom_z: int = 78,
    amorphous: float = 0.0,
    seed: int = 0,
) -> SimulatedImage:
    """Simulate an HR-STEM image of a crystal projection with exact labels.

    The clean image is, in relative units,
    ``background * (1 + ramp) + contrast * S(r) + amorphous * A(r)`` where
    ``S`` is the sum of the column probe images scaled so the brightest
    column type peaks at 1, ``ramp`` a linear gradient and ``A`` a smooth
    random support. With a dose it is converted to electron counts per pixel
    (``dose_e_per_A2 * pixel_size_A**2`` counts for relative intensity 1) and
    Poisson-sampled; ``psnr_db`` then adds Gaussian noise of standard deviation
    ``clean.max() / 10**(psnr_db / 20)`` (PSNR = 20 log10(peak / noise σ)); ``read_noise`` adds
    Gaussian noise of that standard deviation in the image's units.

    Parameters
    ----------
    crystal : Crystal, name in :data:`CRYSTALS`, or None
        None: no crystal (single atoms on a support, see ``adatoms_per_nm2``).
    shape : (rows, cols) or int
        Image size in pixels.
    pixel_size_pm : float
        Sampling: picometres per pixel.
    resolution_pm : float
        Probe FWHM in picometres.
    contrast : float
        Height of the brightest column above the background, relative units.
    background : float
        Flat background level, relative units.
    background_gradient : float
        Relative change of the background across the image (0.5: the
        background goes from 0.75x to 1.25x its level along ``gradient_angle_deg``).
    gradient_angle_deg : float, optional
        Direction of the gradient; random (from ``seed``) by default.
    dose_e_per_A2 : float, optional
        Electron dose; None: no shot noise (relative units).
    psnr_db : float, optional
        Peak signal-to-noise ratio of additional Gaussian noise.
    read_noise : float
        Standard deviation of Gaussian detector noise, in the image's units.
    random_drift : float
        Standard deviation (px) of a random-walk specimen drift over the
        frame (both directions, changing from scan line to scan line).
    flyback_error : float
        Standard deviation (px) of the fast-scan offset at the start of each
        line, decaying exponentially along the line (1/8 of the width).
    line_jitter : float
        Standard deviation (px) of an independent fast-scan offset per line.
    z_exponent : float
        n in column intensity ∝ Σ Z**n (≈1.7 for HAADF).
    mode : {"haadf", "abf"}
        "abf": inverted contrast, dark columns on a bright background
        (``background`` is then the bright level minus 1).
    species : iterable of str, optional
        Render (and label) only these species of the crystal.
    label_min_weight : float
        Columns dimmer than this fraction of the brightest column type are
        rendered but not labelled (e.g. O columns in HAADF).
    rotation_deg : float
        In-plane rotation of the crystal.
    origin_rc : (row, col), optional
        Position of a cell origin; the image centre by default.
    vacancy_fraction : float
        Fraction of columns removed (not rendered, not labelled).
    substitution_fraction : float
        Fraction of columns whose intensity is multiplied by
        ``substitution_weight``; their species gets the suffix ``"*"``.
    substitution_weight : float
    boundary : {None, "grain", "interface"}
        Split the field at column ``boundary_col`` (centre by default): the
        right part is the same crystal rotated by ``boundary_rotation_deg``
        (grain boundary) or ``boundary_crystal`` (interface).
    boundary_rotation_deg : float
    boundary_crystal : Crystal or name, optional
    boundary_col : float, optional
    adatoms_per_nm2 : float
        Density of single atoms of atomic number ``adatom_z`` scattered at
        random (at least 2 Å apart), on top of the crystal if any.
    adatom_z : int
    amorphous : float
        Amplitude of a smooth random amorphous support (relative units).
    seed : int
        Seed of every random draw (defects, noise, distortions).

    Returns
    -------
    SimulatedImage
    """
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape), int(shape))
    shape = (int(shape[0]), int(shape[1]))
    if min(shape) < 1:
        raise ValueError(f"image shape must be positive, got {shape}")
    if pixel_size_pm <= 0 or resolution_pm <= 0:
        raise ValueError("pixel_size_pm and resolution_pm must be positive")
    if mode not in ("haadf", "abf"):
        raise ValueError(f"mode must be 'haadf' or 'abf', not {mode!r}")
    parameters = dict(locals())
    parameters["crystal"] = crystal.name if isinstance(crystal, Crystal) else crystal
    if isinstance(parameters["boundary_crystal"], Crystal):
        parameters["boundary_crystal"] = parameters["boundary_crystal"].name
    parameters["species"] = None if species is None else list(species)
    parameters["shape"] = list(shape)
    xtal = None if crystal is None else get_crystal(crystal)
    rng = np.random.default_rng(seed)
    pixel_size_A = pixel_size_pm / 100.0
    sigma_px = resolution_pm / 100.0 / FWHM_PER_SIGMA / pixel_size_A
    margin_px = -int(np.ceil(4.0 * sigma_px + 2.0))  # render columns just outside too
    positions, names, weights = _columns(
        xtal, shape, pixel_size_A, rng,
        rotation_deg=rotation_deg, origin_rc=origin_rc, margin_px=margin_px, species=species,
        z_exponent=z_exponent, boundary=boundary, boundary_rotation_deg=boundary_rotation_deg,
        boundary_crystal=boundary_crystal, boundary_col=boundary_col,
        adatoms_per_nm2=adatoms_per_nm2, adatom_z=adatom_z,
    )  # fmt: skip
    # relative weights: the brightest column type is 1 (before substitutions)
    relative = weights / weights.max() if len(weights) else weights
    if vacancy_fraction > 0 and len(positions):
        keep = rng.random(len(positions)) >= vacancy_fraction
        positions, names, relative = positions[keep], names[keep], relative[keep]
    if substitution_fraction > 0 and len(positions):
        swapped = rng.random(len(positions)) < substitution_fraction
        relative = np.where(swapped, relative * substitution_weight, relative)
        names = np.where(swapped, np.char.add(names.astype(str), "*"), names)
    dx, dy = _scan_distortion(
        shape, rng, random_drift=random_drift, flyback_error=flyback_error, line_jitter=line_jitter
    )
    signal, apparent = render_columns(shape, positions, relative, sigma_px, dx=dx, dy=dy, return_centroids=True)
    rows, cols = shape
    ramp = 0.0
    if background_gradient:
        angle = rng.uniform(0, 360) if gradient_angle_deg is None else gradient_angle_deg
        t = np.deg2rad(angle)
        ramp = (np.cos(t) * (np.arange(cols) - (cols - 1) / 2) / max(cols - 1, 1))[None, :] + (
            np.sin(t) * (np.arange(rows) - (rows - 1) / 2) / max(rows - 1, 1)
        )[:, None]
    level = background * (1.0 + background_gradient * ramp)
    signal = contrast * signal.astype(np.float64)
    if amorphous > 0:
        signal = signal + amorphous * np.abs(_smooth_noise(shape, 0.7 / pixel_size_A, rng))
    clean = level + signal if mode == "haadf" else level + contrast - signal
    clean = np.clip(clean, 0.0, None)
    if dose_e_per_A2 is not None:
        if dose_e_per_A2 <= 0:
            raise ValueError("dose_e_per_A2 must be positive")
        clean = clean * dose_e_per_A2 * pixel_size_A**2
        image = rng.poisson(clean).astype(np.float64)
    else:
        image = clean.copy()
    if psnr_db is not None:
        peak = float(clean.max()) or 1.0
        image = image + rng.normal(0.0, peak / 10.0 ** (psnr_db / 20.0), shape)
    if read_noise > 0:
        image = image + rng.normal(0.0, read_noise, shape)
    labelled = (
        (relative >= label_min_weight)
        & (apparent[:, 0] >= 0) & (apparent[:, 0] <= rows - 1)
        & (apparent[:, 1] >= 0) & (apparent[:, 1] <= cols - 1)
    )  # fmt: skip
    order = np.lexsort((apparent[labelled, 1], apparent[labelled, 0]))
    return SimulatedImage(
        image=image.astype(np.float32),
        positions_rc=apparent[labelled][order],
        species=names[labelled][order].astype(str),
        pixel_size_A=pixel_size_A,
        clean=clean.astype(np.float32),
        parameters=parameters,
        weights=relative[labelled][order],
    )


def simulate_crystal(
    crystal: Crystal | str,
    *,
    shape: tuple[int, int] = (256, 256),
    pixel_size_A: float = 0.15,
    resolution_A: float = 0.8,
    peak_counts: float = 200.0,
    background_counts: float = 10.0,
    **knobs,
) -> SimulatedImage:
    """:func:`simulate` with Å units and Poisson counts (kept for existing callers).

    ``peak_counts`` is the mean count at the peak of the brightest column
    above ``background_counts``; every other keyword goes to :func:`simulate`.
    """
    knobs.setdefault("label_min_weight", 0.0)
    return simulate(
        crystal,
        shape=shape,
        pixel_size_pm=100.0 * pixel_size_A,
        resolution_pm=100.0 * resolution_A,
        contrast=1.0,
        background=background_counts / peak_counts,
        dose_e_per_A2=peak_counts / pixel_size_A**2,
        **knobs,
    )


def degradation_series(base: dict, knob: str, values: Iterable) -> Iterator[SimulatedImage]:
    """Simulate the same scene with one knob swept (for robustness benchmarks).

    Parameters
    ----------
    base : dict
        Keyword arguments of :func:`simulate` (``crystal`` included).
    knob : str
        A keyword of :func:`simulate`, e.g. one of :data:`KNOBS`.
    values : iterable

    Yields
    ------
    SimulatedImage
        One per value, ``parameters[knob]`` set to it; every other argument,
        the seed included, is the base's.
    """
    import inspect

    if knob not in inspect.signature(simulate).parameters:
        raise ValueError(f"unknown knob {knob!r}; knobs: {', '.join(KNOBS)}")
    for value in values:
        yield simulate(**{**base, knob: value})


def write_simulation(image_path, labels_path, crystal: Crystal | str | None, *, uint16: bool = False, **knobs) -> SimulatedImage:
    """Simulate and write the image (ImageJ TIFF with the pixel size and the
    parameters in its metadata) and the labels CSV (with species).

    Parameters
    ----------
    image_path, labels_path : path
    crystal : Crystal, name or None
    uint16 : bool
        Store the image as uint16 (rounded, clipped counts) instead of float32.
    **knobs
        Keyword arguments of :func:`simulate`.

    Returns
    -------
    SimulatedImage
    """
    import json
    from pathlib import Path

    import tifffile

    from .io import atomic_write_bytes, write_positions

    sim = simulate(crystal, **knobs)
    data = np.clip(np.round(sim.image), 0, 65535).astype(np.uint16) if uint16 else sim.image
    pixels_per_nm = 10.0 / sim.pixel_size_A
    import io as _io

    buffer = _io.BytesIO()
    tifffile.imwrite(
        buffer,
        data,
        imagej=True,
        resolution=(pixels_per_nm, pixels_per_nm),
        metadata={"unit": "nm", "atombench": json.dumps(sim.parameters, default=str)},
    )
    atomic_write_bytes(Path(image_path), buffer.getvalue())
    write_positions(Path(labels_path), sim.positions_rc, sim.pixel_size_A, {"species": sim.species})
    return sim
