"""Synthetic HR-STEM images with exactly known column positions.

A deliberately simple incoherent-imaging model: every atom column is a 2D
Gaussian probe image whose height scales as Z**n (HAADF "Z-contrast",
n ≈ 1.7), summed over a crystal projection, plus a constant background and
Poisson (shot) noise. It is what the bundled sample data are made with and
the base the full simulator (quality knobs, scan distortions) builds on.

Positions are (row, col) in pixels; pixel centres are at integer coordinates.
This module imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Crystal",
    "SimulatedImage",
    "SRTIO3_100",
    "WS2_MONOLAYER",
    "lattice_positions",
    "render_columns",
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
    column_z : dict of species -> effective Z
        For a mixed column (e.g. Ti-O) the sum of Z**n over its atoms is
        used, so this maps species to a tuple of atomic numbers.
    """

    name: str
    cell_A: tuple[tuple[float, float], tuple[float, float]]
    basis: tuple[tuple[float, float, str], ...]
    column_atoms: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def column_weight(self, species: str, z_exponent: float) -> float:
        """Relative HAADF intensity of one column: sum of Z**n of its atoms."""
        return float(sum(z**z_exponent for z in self.column_atoms[species]))


#: SrTiO3 viewed along [100]: Sr columns at the cell corner, Ti-O columns at the
#: centre, pure O columns on the edges. a = 3.905 Å.
SRTIO3_100 = Crystal(
    name="SrTiO3 [100]",
    cell_A=((3.905, 0.0), (0.0, 3.905)),
    basis=((0.0, 0.0, "Sr"), (0.5, 0.5, "TiO"), (0.5, 0.0, "O"), (0.0, 0.5, "O")),
    column_atoms={"Sr": (38,), "TiO": (22, 8), "O": (8,)},
)

#: 2H-WS2 monolayer viewed along [001]: a honeycomb of W and S2 columns,
#: a = 3.18 Å, so neighbouring columns are a/sqrt(3) = 1.836 Å apart.
WS2_MONOLAYER = Crystal(
    name="WS2 monolayer",
    cell_A=((3.18, 0.0), (-1.59, 3.18 * np.sqrt(3.0) / 2.0)),
    basis=((0.0, 0.0, "W"), (1.0 / 3.0, 2.0 / 3.0, "S2")),
    column_atoms={"W": (74,), "S2": (16, 16)},
)


@dataclass
class SimulatedImage:
    """A simulated image and its ground truth.

    Attributes
    ----------
    image : ndarray of float32, shape (H, W)
    positions_rc : ndarray of float64, shape (N, 2)
        Exact column centres (row, col) in pixels, inside the image.
    species : ndarray of str, shape (N,)
    pixel_size_A : float
    clean : ndarray of float32
        The noise-free image (the Poisson mean).
    parameters : dict
        Everything needed to make the image again.
    """

    image: np.ndarray
    positions_rc: np.ndarray
    species: np.ndarray
    pixel_size_A: float
    clean: np.ndarray
    parameters: dict


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
        Keep only columns at least this far inside the image borders.

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
    area = abs(np.cross(cell_px[0], cell_px[1]))
    longest = max(np.linalg.norm(cell_px[0]), np.linalg.norm(cell_px[1]))
    reach = int(np.ceil(np.hypot(rows, cols) * longest / area)) + 2
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
    sigma_px: float,
    *,
    background: float = 0.0,
) -> np.ndarray:
    """Sum of isotropic 2D Gaussians sampled at pixel centres.

    Each Gaussian is evaluated in a window of ±5 sigma around its centre, so
    the cost grows with the number of columns, not the image area squared.

    Parameters
    ----------
    shape : (rows, cols)
    positions_rc : ndarray, shape (N, 2)
    amplitudes : ndarray, shape (N,)
        Peak heights.
    sigma_px : float
    background : float

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    rows, cols = shape
    image = np.full(shape, background, dtype=np.float64)
    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    amplitudes = np.broadcast_to(np.asarray(amplitudes, dtype=float), (len(positions_rc),))
    half = int(np.ceil(5.0 * sigma_px))
    offsets = np.arange(-half, half + 1)
    for (r, c), amplitude in zip(positions_rc, amplitudes):
        r0, c0 = int(round(r)), int(round(c))
        rr = r0 + offsets
        cc = c0 + offsets
        keep_r = (rr >= 0) & (rr < rows)
        keep_c = (cc >= 0) & (cc < cols)
        if not keep_r.any() or not keep_c.any():
            continue
        gr = np.exp(-0.5 * ((rr[keep_r] - r) / sigma_px) ** 2)
        gc = np.exp(-0.5 * ((cc[keep_c] - c) / sigma_px) ** 2)
        image[np.ix_(rr[keep_r], cc[keep_c])] += amplitude * np.outer(gr, gc)
    return image.astype(np.float32)


def simulate_crystal(
    crystal: Crystal,
    *,
    shape: tuple[int, int] = (256, 256),
    pixel_size_A: float = 0.15,
    resolution_A: float = 0.8,
    z_exponent: float = 1.7,
    species: tuple[str, ...] | None = None,
    peak_counts: float = 200.0,
    background_counts: float = 10.0,
    rotation_deg: float = 0.0,
    seed: int = 0,
) -> SimulatedImage:
    """Simulate a HAADF-like image of a crystal projection with shot noise.

    Parameters
    ----------
    crystal : Crystal
    shape : (rows, cols)
    pixel_size_A : float
        Å per pixel.
    resolution_A : float
        Probe FWHM in Å.
    z_exponent : float
        n in intensity ∝ Z**n.
    species : tuple of str, optional
        Which column species to render (and label); all by default.
    peak_counts : float
        Mean electron counts at the peak of the brightest column.
    background_counts : float
        Mean counts of the flat background.
    rotation_deg : float
    seed : int
        Seed of the noise generator.

    Returns
    -------
    SimulatedImage
    """
    positions_rc, names = lattice_positions(crystal, shape, pixel_size_A, rotation_deg=rotation_deg)
    if species is not None:
        keep = np.isin(names, species)
        positions_rc, names = positions_rc[keep], names[keep]
    weights = np.array([crystal.column_weight(n, z_exponent) for n in names])
    amplitudes = peak_counts * weights / weights.max() if len(weights) else weights
    sigma_px = resolution_A / FWHM_PER_SIGMA / pixel_size_A
    clean = render_columns(shape, positions_rc, amplitudes, sigma_px, background=background_counts)
    rng = np.random.default_rng(seed)
    image = rng.poisson(clean).astype(np.float32)
    parameters = dict(
        crystal=crystal.name,
        shape=tuple(shape),
        pixel_size_A=pixel_size_A,
        resolution_A=resolution_A,
        z_exponent=z_exponent,
        species=None if species is None else list(species),
        peak_counts=peak_counts,
        background_counts=background_counts,
        rotation_deg=rotation_deg,
        seed=seed,
    )
    return SimulatedImage(image, positions_rc, names, pixel_size_A, clean, parameters)
