"""Specimens for the simulator: crystal projections (a 2D cell and its atom columns) tiled over a
field of view, with grain boundaries, interfaces, single atoms and point defects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = [
    "CRYSTALS",
    "Crystal",
    "GRAPHENE",
    "SI_110",
    "SRTIO3_100",
    "SRTIO3_110",
    "WS2_MONOLAYER",
    "get_crystal",
    "lattice_positions",
    "random_crystal",
]

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


def _specimen(xtal, shape, pixel_size_A, rng, *, vacancy_fraction, substitution_fraction, substitution_weight,
              **column_options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns (positions, species, weight relative to the brightest column type) with point defects."""
    positions, names, weights = _columns(xtal, shape, pixel_size_A, rng, **column_options)
    # relative weights: the brightest column type is 1 (before substitutions)
    relative = weights / weights.max() if len(weights) else weights
    if vacancy_fraction > 0 and len(positions):
        keep = rng.random(len(positions)) >= vacancy_fraction
        positions, names, relative = positions[keep], names[keep], relative[keep]
    if substitution_fraction > 0 and len(positions):
        swapped = rng.random(len(positions)) < substitution_fraction
        relative = np.where(swapped, relative * substitution_weight, relative)
        names = np.where(swapped, np.char.add(names.astype(str), "*"), names)
    return positions, names, relative
