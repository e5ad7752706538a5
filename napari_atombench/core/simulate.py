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
The crystals live in :mod:`.crystals`, the rendering in :mod:`.image_formation`
(their names are re-exported here). This module imports neither Qt nor napari.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from .crystals import (
    CRYSTALS,
    GRAPHENE,
    SI_110,
    SRTIO3_100,
    SRTIO3_110,
    WS2_MONOLAYER,
    Crystal,
    get_crystal,
    lattice_positions,
    random_crystal,
)
from .crystals import _specimen
from .column_kernels import KernelOptions, probe_fwhm_A, render_kernel_image
from .detectability import localisation_snr, recorded_column_snr, unresolved
from .image_formation import FWHM_PER_SIGMA, _scan_distortion, _smooth_noise, render_columns

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
    unseen_rc : ndarray of float64, shape (M, 2)
        Columns bright enough to be labelled by ``label_min_weight`` that cannot
        be seen one by one: below ``label_min_snr`` (or the SNR needed to place
        them within ``label_max_error_A``), or (``label_resolved_only``)
        closer to another such column than Sparrow's limit. Real columns, so a
        detection on one is neither a hit nor a false positive. Empty without
        those options.
    """

    image: np.ndarray
    positions_rc: np.ndarray
    species: np.ndarray
    pixel_size_A: float
    clean: np.ndarray
    parameters: dict
    weights: np.ndarray | None = None
    unseen_rc: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


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


# over 80 lines only by its numpydoc docstring (the code is under 80)
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
    label_min_snr: float | None = None,
    label_resolved_only: bool = False,
    label_max_error_A: float | None = None,
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
    image_formation: str = "gaussian",
    kernels: KernelOptions | None = None,
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
    label_min_snr : float, optional
        Also leave unlabelled the columns whose matched-filter signal-to-noise
        ratio in this image (:func:`.detectability.column_snr`: shot, read and
        added noise and the support's texture) is below this (Rose's criterion:
        :data:`.detectability.ROSE_SNR` = 5); they are returned as ``unseen_rc``.
        Gaussian image formation only.
    label_max_error_A : float, optional
        With ``label_min_snr``: also leave unlabelled the columns whose SNR is
        below :func:`.detectability.localisation_snr` for this radius (Å), i.e.
        those that even an efficient estimator places further than the radius
        from their centre more than 5 % of the time (broad probes at low SNR).
        Give the matching radius the labels will be scored with (0.5 Å).
    label_resolved_only : bool
        Also leave unlabelled (``unseen_rc``) the columns closer to another
        labelled-by-weight column than Sparrow's limit for two Gaussian probe
        images (2 sigma = 0.85 FWHM), where the pair shows a single maximum.
        Gaussian image formation only.
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
    image_formation : {"gaussian", "kernels"}
        "kernels": each column is rendered as its multislice kernel
        (:mod:`.column_kernels`) in the detector, kV, convergence, thickness
        and adatom depth of ``kernels``; columns are labelled where they are
        detectable in that detector (peak contrast ≥ ``label_min_weight`` of
        the scene's largest) and ``contrast`` scales the largest to its
        height; the probe comes from the library, so ``resolution_pm``,
        ``z_exponent`` and ``mode`` must keep their defaults.
    kernels : KernelOptions, optional
        Only with ``image_formation="kernels"`` (default options if None).

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
    library = _kernel_library(image_formation, kernels, resolution_pm=resolution_pm, z_exponent=z_exponent,
                              mode=mode)
    if library is not None and (label_min_snr is not None or label_resolved_only):
        raise ValueError("label_min_snr and label_resolved_only apply only with image_formation='gaussian' "
                         "(kernel scenes label by peak contrast)")
    if label_max_error_A is not None and (label_min_snr is None or label_max_error_A <= 0):
        raise ValueError("label_max_error_A must be positive and needs label_min_snr (the SNR it is judged by)")
    if library is not None:
        kernels = kernels or KernelOptions()
    parameters = dict(locals())
    del parameters["library"]
    parameters["kernels"] = None if kernels is None else kernels.as_dict()
    parameters["crystal"] = crystal.name if isinstance(crystal, Crystal) else crystal
    if isinstance(parameters["boundary_crystal"], Crystal):
        parameters["boundary_crystal"] = parameters["boundary_crystal"].name
    parameters["species"] = None if species is None else list(species)
    parameters["shape"] = list(shape)
    rng = np.random.default_rng(seed)  # one generator, drawn from in a fixed order: same seed, same image
    pixel_size_A = pixel_size_pm / 100.0
    sigma_px = resolution_pm / 100.0 / FWHM_PER_SIGMA / pixel_size_A
    reach_px = 4.0 * sigma_px if library is None else library.radius_A[-1] / pixel_size_A
    if library is not None:  # where the distorted scan samples a column: the library probe's centroid
        sigma_px = probe_fwhm_A(kernels.kv, kernels.convergence_mrad) / FWHM_PER_SIGMA / pixel_size_A
    positions, names, relative = _specimen(
        None if crystal is None else get_crystal(crystal), shape, pixel_size_A, rng,
        margin_px=-int(np.ceil(reach_px + 2.0)),  # render columns just outside too
        rotation_deg=rotation_deg, origin_rc=origin_rc, species=species, z_exponent=z_exponent,
        boundary=boundary, boundary_rotation_deg=boundary_rotation_deg, boundary_crystal=boundary_crystal,
        boundary_col=boundary_col, adatoms_per_nm2=adatoms_per_nm2, adatom_z=adatom_z,
        vacancy_fraction=vacancy_fraction, substitution_fraction=substitution_fraction,
        substitution_weight=substitution_weight,
    )  # fmt: skip
    dx, dy = _scan_distortion(
        shape, rng, random_drift=random_drift, flyback_error=flyback_error, line_jitter=line_jitter
    )
    signal, apparent = render_columns(shape, positions, relative, sigma_px, dx=dx, dy=dy, return_centroids=True)
    if library is not None:
        signal, relative = _kernel_scene(shape, positions, names, library, kernels, pixel_size_A,
                                         substitution_weight=substitution_weight, label_min_weight=label_min_weight,
                                         dx=dx, dy=dy)
    clean, texture = _clean_image(signal, pixel_size_A, rng, contrast=contrast, background=background,
                                  background_gradient=background_gradient, gradient_angle_deg=gradient_angle_deg,
                                  amorphous=amorphous, mode=mode)
    clean, image = _record(clean, pixel_size_A, rng, dose_e_per_A2=dose_e_per_A2, psnr_db=psnr_db,
                           read_noise=read_noise)
    rows, cols = shape
    labelled = (
        (relative >= label_min_weight)
        & (apparent[:, 0] >= 0) & (apparent[:, 0] <= rows - 1)
        & (apparent[:, 1] >= 0) & (apparent[:, 1] <= cols - 1)
    )  # fmt: skip
    unseen = np.zeros(len(labelled), dtype=bool)
    if label_min_snr is not None:
        noise = dict(dose_e_per_A2=dose_e_per_A2, psnr_db=psnr_db, read_noise=read_noise)
        snr = recorded_column_snr(clean, texture, apparent, contrast * relative, sigma_px, pixel_size_A, **noise)
        needed = label_min_snr
        if label_max_error_A is not None:
            needed = max(needed, localisation_snr(sigma_px, pixel_size_A, label_max_error_A))
        unseen |= labelled & (snr < needed)
    if label_resolved_only:
        unseen |= labelled & unresolved(apparent, relative >= label_min_weight, sigma_px)
    labelled &= ~unseen
    order = np.lexsort((apparent[labelled, 1], apparent[labelled, 0]))
    return SimulatedImage(
        image=image.astype(np.float32),
        positions_rc=apparent[labelled][order],
        species=names[labelled][order].astype(str),
        pixel_size_A=pixel_size_A,
        clean=clean.astype(np.float32),
        parameters=parameters,
        weights=relative[labelled][order],
        unseen_rc=apparent[unseen],
    )


def _kernel_library(image_formation, kernels, *, resolution_pm, z_exponent, mode):
    """The kernel library for ``image_formation="kernels"`` (None for "gaussian"); rejects options that do not apply."""
    if image_formation not in ("gaussian", "kernels"):
        raise ValueError(f"image_formation must be 'gaussian' or 'kernels', not {image_formation!r}")
    if image_formation == "gaussian":
        if kernels is not None:
            raise ValueError("kernels= applies only with image_formation='kernels'")
        return None
    defaults = inspect.signature(simulate).parameters
    given = {"resolution_pm": resolution_pm, "z_exponent": z_exponent, "mode": mode}
    changed = [k for k, v in given.items() if v != defaults[k].default]
    if changed:
        raise ValueError(f"{', '.join(changed)} do(es) not apply with image_formation='kernels' (the library's "
                         "probe and detector make the image; choose the detector in KernelOptions)")
    if kernels is not None and not isinstance(kernels, KernelOptions):
        raise ValueError(f"kernels must be KernelOptions, not {type(kernels).__name__}")
    return (kernels or KernelOptions()).load_library()


def _kernel_scene(shape, positions, names, library, kernels, pixel_size_A, *, substitution_weight,
                  label_min_weight, dx, dy) -> tuple[np.ndarray, np.ndarray]:
    """(signal scaled so the largest column contrast is 1 above the vacuum level, relative detectability)."""
    names = np.asarray(names, dtype=str)
    adatom = np.array([re.fullmatch(r"Z\d+", n) is not None for n in names.tolist()], dtype=bool)  # "Z78"
    image = render_kernel_image(
        shape, positions, names, library, detector=kernels.detector, pixel_size_A=pixel_size_A, kv=kernels.kv,
        convergence_mrad=kernels.convergence_mrad,
        thickness_A=np.where(adatom, library.thickness_A[0], kernels.thickness_A),
        depth_A=np.where(adatom, kernels.adatom_depth_A, 0.0),
        amplitudes=np.where(np.char.endswith(names, "*"), substitution_weight, 1.0),
        source_size_pm=kernels.source_size_pm, detectable_fraction=label_min_weight, dx=dx, dy=dy,
    )  # fmt: skip
    scale = float(image.peak_contrast.max()) if len(names) and image.peak_contrast.max() > 0 else 1.0
    relative = image.peak_contrast / scale
    return image.image / scale, relative


def _clean_image(signal, pixel_size_A, rng, *, contrast, background, background_gradient, gradient_angle_deg,
                 amorphous, mode) -> tuple[np.ndarray, np.ndarray | None]:
    """(the noise-free image in relative units: background with its ramp, columns, amorphous support;
    the support's texture alone, None without one)."""
    rows, cols = signal.shape
    ramp = 0.0
    if background_gradient:
        angle = rng.uniform(0, 360) if gradient_angle_deg is None else gradient_angle_deg
        t = np.deg2rad(angle)
        ramp = (np.cos(t) * (np.arange(cols) - (cols - 1) / 2) / max(cols - 1, 1))[None, :] + (
            np.sin(t) * (np.arange(rows) - (rows - 1) / 2) / max(rows - 1, 1)
        )[:, None]
    level = background * (1.0 + background_gradient * ramp)
    signal = contrast * signal.astype(np.float64)
    texture = None
    if amorphous > 0:
        texture = amorphous * np.abs(_smooth_noise(signal.shape, 0.7 / pixel_size_A, rng))
        signal = signal + texture
    clean = level + signal if mode == "haadf" else level + contrast - signal
    return np.clip(clean, 0.0, None), texture


def _record(clean, pixel_size_A, rng, *, dose_e_per_A2, psnr_db, read_noise) -> tuple[np.ndarray, np.ndarray]:
    """(clean image in the recorded units, recorded image): counts and Poisson noise with a dose, then Gaussian noise."""
    if dose_e_per_A2 is not None:
        if dose_e_per_A2 <= 0:
            raise ValueError("dose_e_per_A2 must be positive")
        clean = clean * dose_e_per_A2 * pixel_size_A**2
        image = rng.poisson(clean).astype(np.float64)
    else:
        image = clean.copy()
    if psnr_db is not None:
        peak = float(clean.max()) or 1.0
        image = image + rng.normal(0.0, peak / 10.0 ** (psnr_db / 20.0), clean.shape)
    if read_noise > 0:
        image = image + rng.normal(0.0, read_noise, clean.shape)
    return clean, image


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
