"""Training data: random simulated scenes (domain randomisation) and their targets.

A pool of random scenes from :mod:`napari_atombench.core.simulate`
(perovskites with random A/B-site atoms so B-site columns range from weak to
strong, SrTiO3 [110], WS2, graphene, Si [110] dumbbells, random lattices, grain
boundaries and interfaces, single heavy atoms on an amorphous support), every
knob drawn at random (sampling ±25 % around the trained pixel size,
resolution, dose, background and gradient, read noise, drift, flyback error,
line jitter, defects); with ``modalities`` also ABF, iDPC-like, low-dose
light-element, nanoparticle and thick-support scenes and image-processing
artefacts. :mod:`napari_atombench.models.train` trains on it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..core import simulate as sim
from ..core.detectability import ROSE_SNR
from ..core.match import nearest_neighbour_distances_px

#: Å per pixel of every training image (± the random sampling jitter)
TRAINED_PIXEL_SIZE_A = 0.2

#: scenes per independently seeded chunk of a v3 (``modalities``) pool
POOL_CHUNK = 250

#: columns closer than this many probe FWHMs are not resolvable (Sparrow-like limit
#: for two equal Gaussians is 0.85 FWHM; 1/1.1 leaves a small margin of merged pairs)
RESOLVABLE_SEPARATION_FWHM = 1.1

#: "seen" label policy (``seen_labels``; validation's default): a column the labels would
#: count is labelled only where it can be seen on its own in that image -- matched-filter
#: SNR >= Rose's 5 (shot, read noise and the support's texture;
#: :mod:`napari_atombench.core.detectability`), high enough to place it within the scoring
#: radius :data:`LABEL_MAX_ERROR_A` (Cramér–Rao bound; matters for broad probes), and no
#: other column within Sparrow's limit
#: (``label_resolved_only``). The others are real but unseen: their pixels are left out of
#: the training loss (:data:`IGNORED_TARGET`) and a detection on one is neither a hit nor
#: a false positive in validation
LABEL_MIN_SNR = ROSE_SNR
#: the matching radius validation scores with (Å): a "seen" column must be placeable within it
LABEL_MAX_ERROR_A = 0.5
#: target value of pixels the loss ignores (around an unseen column)
IGNORED_TARGET = -1.0


# ------------------------------------------------------------------------- scenes


def _perovskite(rng: np.random.Generator) -> sim.Crystal:
    a = rng.uniform(3.85, 4.1)
    za = int(rng.choice([38, 56, 57, 82, 83, 60, 39]))
    zb = int(rng.choice([22, 25, 26, 27, 28, 40, 41, 44, 42]))
    return sim.Crystal(
        name="perovskite [100]",
        cell_A=((a, 0.0), (0.0, a)),
        basis=((0.0, 0.0, "A"), (0.5, 0.5, "BO"), (0.5, 0.0, "O"), (0.0, 0.5, "O")),
        column_atoms={"A": (za,), "BO": (zb, 8), "O": (8,)},
    )


def random_scene_kwargs(rng: np.random.Generator, crop_px: int, pixel_size_A: float,
                        native_pixel_size_A: tuple[float, float] | None = None,
                        resolution_pm: tuple[float, float] | None = None, seen_labels: bool = False) -> dict:
    """Random :func:`~napari_atombench.core.simulate.simulate` keyword arguments.

    With ``native_pixel_size_A`` the scene is drawn at a native pixel size in that range
    and a side that covers the field of view of a ``crop_px`` crop at ``pixel_size_A``.
    With ``resolution_pm`` the probe FWHM is log-uniform in that range (else uniform
    60–125 pm). ``seen_labels``: the "seen" label policy (:data:`LABEL_MIN_SNR`); the
    random draws are the same either way.
    """
    if native_pixel_size_A is None:
        px = pixel_size_A * math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    else:
        lo, hi = native_pixel_size_A
        px = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        crop_px = max(16, int(round(crop_px * pixel_size_A / px)))
    kind = rng.choice(
        ["perovskite", "srtio3_110", "ws2", "graphene", "si_110", "random", "boundary", "adatoms"],
        p=[0.24, 0.08, 0.08, 0.05, 0.13, 0.2, 0.1, 0.12],
    )
    rotation = rng.uniform(-4, 4) + (rng.choice([0, 90]) if rng.random() < 0.6 else rng.uniform(0, 360))
    peak_counts = math.exp(rng.uniform(math.log(4), math.log(1500)))
    kw: dict = dict(
        shape=(crop_px, crop_px),
        pixel_size_pm=100 * px,
        resolution_pm=(100 * rng.uniform(0.6, 1.25) if resolution_pm is None
                       else math.exp(rng.uniform(math.log(resolution_pm[0]), math.log(resolution_pm[1])))),
        contrast=1.0,
        background=rng.uniform(0.0, 0.6),
        background_gradient=rng.uniform(0.0, 0.8) if rng.random() < 0.6 else 0.0,
        dose_e_per_A2=peak_counts / px**2,
        read_noise=rng.uniform(0, 0.08) * peak_counts if rng.random() < 0.4 else 0.0,
        random_drift=rng.uniform(0, 1.2) if rng.random() < 0.5 else 0.0,
        flyback_error=rng.uniform(0, 0.8) if rng.random() < 0.3 else 0.0,
        line_jitter=rng.uniform(0, 0.6) if rng.random() < 0.4 else 0.0,
        z_exponent=rng.uniform(1.5, 2.0),
        rotation_deg=float(rotation),
        origin_rc=(float(rng.uniform(0, crop_px)), float(rng.uniform(0, crop_px))),
        vacancy_fraction=rng.uniform(0, 0.05) if rng.random() < 0.3 else 0.0,
        substitution_fraction=rng.uniform(0, 0.1) if rng.random() < 0.2 else 0.0,
        substitution_weight=float(rng.choice([0.6, 1.5])),
        amorphous=rng.uniform(0, 0.3) if rng.random() < 0.3 else 0.0,
        label_min_weight=0.1,
        label_min_snr=LABEL_MIN_SNR if seen_labels else None,
        label_resolved_only=seen_labels,
        label_max_error_A=LABEL_MAX_ERROR_A if seen_labels else None,
        seed=int(rng.integers(2**31)),
    )
    if kind == "perovskite":
        kw["crystal"] = _perovskite(rng)
    elif kind == "random":
        kw["crystal"] = sim.random_crystal(rng, min_separation_A=1.3)
    elif kind == "boundary":
        kw["crystal"] = _perovskite(rng)
        if rng.random() < 0.5:
            kw.update(boundary="grain", boundary_rotation_deg=float(rng.uniform(10, 45)))
        else:
            kw.update(boundary="interface", boundary_crystal=_perovskite(rng), boundary_rotation_deg=0.0)
        kw["boundary_col"] = float(rng.uniform(0.2, 0.8) * crop_px)
    elif kind == "adatoms":
        kw.update(crystal=None, adatoms_per_nm2=rng.uniform(0.5, 4.0), adatom_z=int(rng.choice([78, 79, 77, 74])),
                  amorphous=rng.uniform(0.1, 0.6), z_exponent=1.7)
    else:
        kw["crystal"] = str(kind)
    return kw


#: v3 modality scenes and their share of the pool (the rest: the v2 kinds). Label
#: policy (docs/models.md): a column is labelled when its contrast weight in that
#: modality is >= 0.1 of the brightest column's (``label_min_weight``), so
#: - ``abf``: dark columns, weight ∝ Z^0.3–0.6 — O, N, C columns are labelled;
#:   the image is mirrored to bright columns as ``contrast="dark"`` inference does;
#: - ``idpc``: bright columns, weight ∝ Z^0.4–0.7 — light columns (O) are labelled;
#: - ``light_lowdose``: graphene / hBN, 1–12 counts at a column — every atom;
#: - ``nanoparticle``: an fcc [100] particle on vacuum, broad touching columns — every
#:   column whose centre is inside the particle;
#: - ``thick_support``: single heavy atoms on a thick amorphous support with a
#:   thickness gradient and probes up to 400 pm — every heavy atom.
#: Z exponents of column contrast: ABF scales about as Z^(1/3) and iDPC as the projected
#: potential (about Z^0.6), so a light column stands at >= a quarter of the heaviest
#: (O next to Ba: (8/56)^0.7 = 0.26) -- well apart from HAADF (Z^1.5-2.0), where a pure O
#: column is at <= 6 % and unlabelled; between the two no training scene labels light columns
ABF_Z_EXPONENT = (0.3, 0.6)
IDPC_Z_EXPONENT = (0.4, 0.7)
#: amplitude of the support's texture on ``thick_support`` scenes, relative to an atom's
#: peak: the texture is |smooth noise| (peaks ~3x its amplitude), so up to 0.35 leaves every
#: labelled atom visible above most of the support; 0.5-1.5 (the first v3 recipe) buried
#: most atoms, labelled but invisible (v2 and the first v3 found 12-45 % of them)
THICK_SUPPORT_AMORPHOUS = (0.1, 0.35)
MODALITY_KINDS = {"abf": 0.12, "idpc": 0.1, "light_lowdose": 0.08, "nanoparticle": 0.07, "thick_support": 0.06}
#: v3 networks take a second input plane, ``light_columns``, saying which columns count:
#: 1 labels the columns of the modality's own policy above (light columns among heavy ones
#: in ABF and iDPC); 0 labels, on every scene, only the columns HAADF would label (weight
#: Z^1.7 >= 0.1 of the brightest: pure O columns next to cations are not atoms then) --
#: the convention of HAADF images and the published benchmark. Share of ABF/iDPC scenes
#: shown with 1, and of the other scenes (whose labels are the same either way)
LIGHT_COLUMNS_SHARE = {"light_modalities": 0.5, "other": 0.25}
LIGHT_MODALITIES = ("abf", "idpc")

HBN = sim.Crystal(
    name="hBN monolayer",
    cell_A=((2.50, 0.0), (-1.25, 2.50 * np.sqrt(3.0) / 2.0)),
    basis=((0.0, 0.0, "B"), (1.0 / 3.0, 2.0 / 3.0, "N")),
    column_atoms={"B": (5,), "N": (7,)},
)


def _fcc_100(rng: np.random.Generator) -> sim.Crystal:
    a = rng.uniform(3.6, 4.2)  # Cu ... Au/Pt
    z = int(rng.choice([78, 79, 46, 47, 29]))
    return sim.Crystal(name="fcc [100]", cell_A=((a, 0.0), (0.0, a)), basis=((0.0, 0.0, "M"), (0.5, 0.5, "M")),
                       column_atoms={"M": (z, z)})


def modality_scene_kwargs(kind: str, kw: dict, rng: np.random.Generator) -> dict:
    """Turn v2 scene keywords ``kw`` into a scene of modality ``kind`` (see :data:`MODALITY_KINDS`)."""
    scene_keys = ("crystal", "boundary", "boundary_rotation_deg", "boundary_crystal", "boundary_col",
                  "adatoms_per_nm2", "adatom_z")
    kw = {k: v for k, v in kw.items() if k not in scene_keys}
    if kind == "abf":
        kw.update(mode="abf", z_exponent=rng.uniform(*ABF_Z_EXPONENT), background=rng.uniform(0.3, 1.0),
                  crystal=_perovskite(rng) if rng.random() < 0.5 else str(rng.choice(["srtio3_110", "ws2", "si_110"])))
    elif kind == "idpc":
        kw.update(z_exponent=rng.uniform(*IDPC_Z_EXPONENT),
                  crystal=_perovskite(rng) if rng.random() < 0.6 else str(rng.choice(["srtio3_110", "ws2"])))
    elif kind == "light_lowdose":
        counts = rng.uniform(1.0, 12.0)
        px = kw["pixel_size_pm"] / 100.0
        kw.update(crystal=HBN if rng.random() < 0.5 else "graphene", dose_e_per_A2=counts / px**2,
                  read_noise=0.0, background=rng.uniform(0.0, 0.3), z_exponent=1.7)
    elif kind == "nanoparticle":
        kw.update(crystal=_fcc_100(rng), background=rng.uniform(0.0, 0.1), amorphous=rng.uniform(0.0, 0.15),
                  vacancy_fraction=0.0, substitution_fraction=0.0)
    elif kind == "thick_support":
        kw.update(crystal=None, adatoms_per_nm2=rng.uniform(0.3, 3.0), adatom_z=int(rng.choice([78, 79, 77, 74])),
                  amorphous=rng.uniform(*THICK_SUPPORT_AMORPHOUS), background_gradient=rng.uniform(0.3, 1.0),
                  z_exponent=1.7,
                  resolution_pm=math.exp(rng.uniform(math.log(80), math.log(400))))
    else:
        raise ValueError(f"unknown modality {kind!r}; known: {', '.join(MODALITY_KINDS)}")
    return kw


def modality_shares_checked(overrides: dict[str, float] | None) -> dict[str, float]:
    """:data:`MODALITY_KINDS` with the shares in ``overrides`` (kind: share of the pool);
    raises ValueError for an unknown kind, a negative share or shares that sum to 1 or more
    (the v2 kinds must keep a share)."""
    kinds = dict(MODALITY_KINDS)
    for kind, share in (overrides or {}).items():
        if kind not in kinds:
            raise ValueError(f"unknown modality {kind!r} in the shares; known: {', '.join(MODALITY_KINDS)}")
        if not 0.0 <= float(share) < 1.0:
            raise ValueError(f"share of {kind!r} must be in [0, 1), not {share}")
        kinds[kind] = float(share)
    if sum(kinds.values()) >= 1.0:
        raise ValueError(f"modality shares sum to {sum(kinds.values()):.2f}; they must leave room for the v2 kinds (< 1)")
    return kinds


def nanoparticle_mask(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A particle on vacuum: (soft mask for the image, hard mask for the labels), an
    ellipse covering 30-80 % of the crop."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    centre = np.array(shape) * rng.uniform(0.3, 0.7, 2)
    radii = np.array(shape) * rng.uniform(0.25, 0.45, 2)
    d = np.hypot((rows - centre[0]) / radii[0], (cols - centre[1]) / radii[1])
    from scipy.ndimage import gaussian_filter

    return gaussian_filter((d <= 1).astype(np.float32), 1.0), d <= 1


def make_target(positions_rc: np.ndarray, shape: tuple[int, int], kind: str, size_px: float) -> np.ndarray:
    """Training target: Gaussian blobs (``gauss``, σ = size) or binary disks (``disk``, radius = size)."""
    if kind == "gauss":
        return np.clip(sim.render_columns(shape, positions_rc, 1.0, size_px), 0.0, 1.0)
    if kind == "disk":
        target = np.zeros(shape, dtype=np.float32)
        h = int(math.ceil(size_px))
        off = np.arange(-h, h + 1)
        for r, c in np.asarray(positions_rc).reshape(-1, 2):
            rr, cc = int(round(r)) + off, int(round(c)) + off
            d2 = (rr[:, None] - r) ** 2 + (cc[None, :] - c) ** 2
            ok_r, ok_c = (rr >= 0) & (rr < shape[0]), (cc >= 0) & (cc < shape[1])
            sub = d2[np.ix_(ok_r, ok_c)] <= size_px**2
            block = target[np.ix_(rr[ok_r], cc[ok_c])]
            target[np.ix_(rr[ok_r], cc[ok_c])] = np.maximum(block, sub)
        return target
    raise ValueError(f"unknown target kind {kind!r}")


def ignore_unseen_columns(target: np.ndarray, unseen_rc: np.ndarray, kind: str, size_px: float) -> np.ndarray:
    """``target`` with :data:`IGNORED_TARGET` where an unseen column's own target
    (:func:`make_target`) is above 0.05 and no labelled column's is."""
    if len(unseen_rc) == 0:
        return target
    around = make_target(unseen_rc, target.shape, kind, size_px) > 0.05
    return np.where(around & (target < 0.05), IGNORED_TARGET, target).astype(target.dtype)


def counted_columns(s) -> np.ndarray:
    """Every column of scene ``s`` that its weight policy counts: labelled or unseen."""
    return np.vstack([s.positions_rc, s.unseen_rc])


def resolvable_resolution_pm(positions_rc: np.ndarray, pixel_size_A: float, resolution_pm: float,
                             floor_pm: float = 0.0) -> float:
    """``resolution_pm`` capped at :data:`RESOLVABLE_SEPARATION_FWHM` × the closest
    separation of the columns (5th percentile of nearest-neighbour distances), but
    not below ``floor_pm``."""
    if len(positions_rc) < 3:
        return float(resolution_pm)
    nearest = nearest_neighbour_distances_px(positions_rc)
    limit_pm = RESOLVABLE_SEPARATION_FWHM * float(np.percentile(nearest, 5)) * 100.0 * float(pixel_size_A)
    return float(max(min(resolution_pm, limit_pm), floor_pm))


def heavy_column_labels(s, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, unseen) columns of scene ``s`` (simulated with ``kwargs``, its probe
    possibly capped since) under the HAADF policy: the same scene (same seed) rendered as
    HAADF (Z^1.7) says which columns count, at identical positions; of those, the ones
    ``s`` itself labels are labelled and the ones unseen in ``s`` are unseen."""
    haadf = sim.simulate(**{**kwargs, "resolution_pm": s.parameters["resolution_pm"], "z_exponent": 1.7,
                            "mode": "haadf", "label_min_snr": None, "label_resolved_only": False,
                            "label_max_error_A": None})
    heavy = {tuple(p) for p in haadf.positions_rc.tolist()}

    def kept(points: np.ndarray) -> np.ndarray:
        return points[np.array([tuple(p) in heavy for p in points.tolist()], dtype=bool)].reshape(-1, 2)

    return kept(s.positions_rc), kept(s.unseen_rc)


def make_pool(n: int, crop_px: int, *, seed: int, target: str, target_px: float,
              pixel_size_A: float = TRAINED_PIXEL_SIZE_A, native_pixel_size_A: tuple[float, float] | None = None,
              resolution_pm: tuple[float, float] | None = None, modalities: bool = False,
              seen_labels: bool = False, modality_shares: dict[str, float] | None = None,
              broad_thick_probes: bool = False, progress: Callable[[int, int], None] | None = None):
    """``n`` random scenes: images (n, crop, crop) float32, targets (n, crop, crop)
    float16, the median nearest-neighbour separation (px) of each scene's labelled
    columns (n,) (NaN with fewer than 3), and each scene's ``light_columns`` input (n,)
    float32 (all 0 without ``modalities``).

    With ``native_pixel_size_A`` each scene is simulated at its own pixel size and
    resampled to the crop with the locator's :func:`~napari_atombench.models.sampling.resample`.
    With ``resolution_pm`` the probe FWHM is drawn log-uniformly in that range and a
    scene whose labelled columns it would merge is simulated again with the FWHM capped
    at :data:`RESOLVABLE_SEPARATION_FWHM` × their closest separation (5th percentile).
    With ``modalities`` a share of the scenes are :data:`MODALITY_KINDS` and each scene
    gets a ``light_columns`` flag (:data:`LIGHT_COLUMNS_SHARE`); ABF and iDPC scenes with
    flag 0 are labelled by :func:`heavy_column_labels`. With ``seen_labels`` the "seen"
    label policy (:data:`LABEL_MIN_SNR`): targets are :data:`IGNORED_TARGET` around unseen
    columns, and thick-support scenes keep their broad probes (merged pairs are unseen).
    ``modality_shares`` overrides the pool shares of some :data:`MODALITY_KINDS` (with
    ``modalities`` only; see :func:`modality_shares_checked`). ``broad_thick_probes``:
    thick-support scenes keep their broad probes with either label policy, as in
    validation (with ``modalities`` only; implied by ``seen_labels``).
    """
    from ._pipeline import positions_to_frame
    from .sampling import resample

    if modality_shares and not modalities:
        raise ValueError("modality_shares applies only with modalities=True")
    if broad_thick_probes and not modalities:
        raise ValueError("broad_thick_probes applies only with modalities=True")
    keep_broad_thick = seen_labels or broad_thick_probes
    kinds = modality_shares_checked(modality_shares)
    names = list(kinds)
    shares = np.array([kinds[k] for k in names])

    rng = np.random.default_rng(seed)
    images = np.zeros((n, crop_px, crop_px), np.float32)
    targets = np.zeros((n, crop_px, crop_px), np.float16)
    light = np.zeros(n, np.float32)
    separations = []
    for k in range(n):
        kwargs = random_scene_kwargs(rng, crop_px, pixel_size_A, native_pixel_size_A, resolution_pm, seen_labels)
        modality = None
        if modalities and rng.random() < shares.sum():
            modality = str(rng.choice(names, p=shares / shares.sum()))
            kwargs = modality_scene_kwargs(modality, kwargs, rng)
        s = sim.simulate(**kwargs)
        if resolution_pm is not None and not (keep_broad_thick and modality == "thick_support"):
            capped = resolvable_resolution_pm(counted_columns(s), s.pixel_size_A, kwargs["resolution_pm"], resolution_pm[0])
            if capped < kwargs["resolution_pm"]:
                s = sim.simulate(**{**kwargs, "resolution_pm": capped})
        image, positions, unseen = _modality_image(s, modality, rng)
        if modalities:
            share = LIGHT_COLUMNS_SHARE["light_modalities" if modality in LIGHT_MODALITIES else "other"]
            light[k] = float(rng.random() < share)
            if modality in LIGHT_MODALITIES and not light[k]:  # ABF/iDPC keep positions: no mask
                positions, unseen = heavy_column_labels(s, kwargs)
        if image.shape != (crop_px, crop_px):
            native_shape = image.shape
            image = resample(image, (crop_px, crop_px))
            positions = positions_to_frame(positions, native_shape, image.shape)
            unseen = positions_to_frame(unseen, native_shape, image.shape)
        images[k] = image
        targets[k] = ignore_unseen_columns(make_target(positions, image.shape, target, target_px), unseen, target,
                                          target_px)
        separations.append(float(np.median(nearest_neighbour_distances_px(positions))) if len(positions) > 2
                           else np.nan)
        if progress is not None and (k + 1) % 50 == 0:
            progress(k + 1, n)
    return images, targets, np.array(separations), light


def _modality_image(s, modality: str | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image the network is shown, its labels and its unseen columns, for a scene of ``modality``."""
    image, positions, unseen = s.image.astype(np.float32), s.positions_rc, s.unseen_rc
    if modality == "abf":
        from ..core.contrast import to_bright

        image = to_bright(image, "dark")  # as contrast="dark"/"auto" inference does
    elif modality == "nanoparticle":
        from scipy.ndimage import gaussian_filter

        soft, hard = nanoparticle_mask(image.shape, rng)
        noise = float(np.std(image - gaussian_filter(image, 1.0)))
        vacuum = float(np.percentile(image, 1)) + rng.normal(0.0, 0.7 * noise + 1e-6, image.shape)
        image = (soft * image + (1.0 - soft) * vacuum).astype(np.float32)
        positions, unseen = _inside(positions, hard), _inside(unseen, hard)
    return image, positions, unseen


def _inside(positions_rc: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not len(positions_rc):
        return positions_rc
    idx = np.clip(np.round(positions_rc).astype(int), 0, np.array(mask.shape) - 1)
    return positions_rc[mask[idx[:, 0], idx[:, 1]]]


def processing_artefacts(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression, Wiener-like low-pass and scan-row offsets, each on a share of images."""
    if rng.random() < 0.12:
        import io

        from PIL import Image

        lo, hi = float(img.min()), float(img.max())
        img8 = np.clip((img - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img8).save(buf, format="JPEG", quality=int(rng.integers(20, 90)))
        img = np.asarray(Image.open(buf), dtype=np.float32)
    if rng.random() < 0.12:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, rng.uniform(0.5, 1.5))
    if rng.random() < 0.12:
        img = img + rng.normal(0.0, rng.uniform(0.02, 0.1) * float(img.std()), (img.shape[0], 1))
    return img.astype(np.float32)


def _pool_chunk(args: tuple) -> tuple:
    n, crop_px, seed, kwargs = args
    return make_pool(n, crop_px, seed=seed, **kwargs)


def make_pool_chunked(n: int, crop_px: int, *, seed: int, workers: int = 1,
                      **kwargs):
    """:func:`make_pool` in chunks of :data:`POOL_CHUNK` scenes, chunk ``k`` seeded
    ``(seed, k)``, generated by ``workers`` processes (same pool for any ``workers``)."""
    sizes = [min(POOL_CHUNK, n - start) for start in range(0, n, POOL_CHUNK)]
    seeds = [int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(len(sizes))]
    jobs = [(size, crop_px, chunk_seed, kwargs) for size, chunk_seed in zip(sizes, seeds)]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(int(workers)) as pool:
            parts = pool.map(_pool_chunk, jobs)
    else:
        parts = [_pool_chunk(job) for job in jobs]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
