"""Every registered model, as data: the published networks and the weights we trained.

Importing :mod:`napari_atombench.models` imports this module, so the registry is
filled before anyone asks it for a model. Adding a model is one
:func:`~napari_atombench.models.registry.register` call here.

Our own weights ship in ``napari_atombench/models/weights/`` with a card
(``<stem>.json``: SHA-256, architecture arguments, trained sampling, selected
threshold), so they work offline and are hash-checked like downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .ours import card_options
from .registry import PACKAGED_WEIGHTS_DIR, ModelSpec, PackagedWeights, UrlWeights, register

# --------------------------------------------------------------------- published models

_AICRYST = "https://raw.githubusercontent.com/pycroscopy/AICrystallographer/master/AtomNet/saved_models/"
_ATOMSEGNET = "https://raw.githubusercontent.com/xinhuolin/AtomSegNet/master/model_weights/"

register(
    ModelSpec(
        name="atomnet-cubic",
        family="atomnet",
        architecture="resatomsegnet_s2",
        weights=UrlWeights(
            url=_AICRYST + "cubic-best_weights.pt",
            filename="cubic-best_weights.pt",
            sha256="dc305d6f48bb3e6a22fd91385ef561b4425e73e74a9ecaf8b206a86bbe327c35",
            git_blob_sha1="2604d2a2b412db2fa5b1f57d3c06caf1a3523199",
            size=4034538,
        ),
        options={"threshold": 0.5},
        description="AtomNet resatomsegnet_s2, 'cubic' weights (Ziatdinov et al.)",
    )
)
register(
    ModelSpec(
        name="atomnet-hexagonal",
        family="atomnet",
        architecture="atomsegnet",
        weights=UrlWeights(
            url=_AICRYST + "G-Si-DFT0-1-4-best_weights.pt",
            filename="G-Si-DFT0-1-4-best_weights.pt",
            git_blob_sha1="012f4f6417eb78aa6ff900ef95985733505d06bf",
        ),
        options={"threshold": 0.5},
        description="AtomNet atomsegnet, 'hexagonal' graphene weights (Ziatdinov et al.)",
    )
)
register(
    ModelSpec(
        name="atomsegnet-gaussianmask",
        family="atomsegnet",
        architecture="unet",
        weights=UrlWeights(
            url=_ATOMSEGNET + "gaussianMask%2B.pth",
            filename="gaussianMask+.pth",
            git_blob_sha1="04464d67b166dfe32eba05b81e3e70aa4fda1bf1",
        ),
        description="AtomSegNet UNet, 'gaussianMask+' weights (Lin, Ge & Xin)",
    )
)
register(
    ModelSpec(
        name="atomsegnet-superresolution",
        family="atomsegnet",
        architecture="nestedunet",
        weights=UrlWeights(
            url=_ATOMSEGNET + "Gen1-noNoiseNoBackgroundSuperresolution.pth",
            filename="Gen1-noNoiseNoBackgroundSuperresolution.pth",
            git_blob_sha1="89f6f24ccfae4a281bb0cf7d343b5bd40320ec03",
        ),
        description="AtomSegNet NestedUNet, 'superresolution' weights (Lin, Ge & Xin)",
    )
)


# ------------------------------------------------------------------------------ ours


def card(filename: str) -> dict[str, Any]:
    """The training record saved next to a packaged weights file (``<stem>.json``)."""
    path = PACKAGED_WEIGHTS_DIR / (Path(filename).stem + ".json")
    if path.is_file():
        return json.loads(path.read_text())
    return {}


#: name -> filename, family, architecture, description (and options of our own)
OUR_MODELS: dict[str, dict[str, Any]] = {
    "atombench": dict(
        filename="atombench.pt",
        family="atombench",
        architecture="atombench_unet",
        description="our compact U-Net (Gaussian heatmap, sampling-aware), trained on our simulator",
        # a column centred within 3 px of the border is cut by it: most of its
        # profile is missing, so it is neither labelled by hand nor reliably placed
        edge_px=3.0,
    ),
    "atomnet-sim": dict(
        filename="atomnet-sim.pt",
        family="atomnet",
        architecture="resatomsegnet_s2",
        description="AtomNet resatomsegnet_s2 trained on our simulator (binary disks)",
    ),
    "atomsegnet-sim": dict(
        filename="atomsegnet-sim.pt",
        family="atomsegnet",
        architecture="unet",
        description="AtomSegNet UNet trained on our simulator (Gaussian masks)",
    ),
}


def weights_path(name: str) -> Path:
    """Where the packaged weights of one of :data:`OUR_MODELS` live."""
    return PACKAGED_WEIGHTS_DIR / OUR_MODELS[name]["filename"]


def _our_options(info: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    if info["family"] == "atomnet":
        return {"threshold": 0.5, "edge_px": 0.5}
    if info["family"] == "atomsegnet":
        return {"edge_px": 0.5}
    return {"edge_px": info["edge_px"], **card_options(record)}


for _name, _info in OUR_MODELS.items():
    _record = card(_info["filename"])
    register(
        ModelSpec(
            name=_name,
            family=_info["family"],
            architecture=_info["architecture"],
            weights=PackagedWeights(_info["filename"], sha256=_record.get("sha256")),
            arch_kwargs=_record.get("arch_kwargs", {}),
            options=_our_options(_info, _record),
            trained_pixel_size_A=_record.get("trained_pixel_size_A", 0.2),
            trained_separation_px=_record.get("trained_separation_px", 14.0),
            description=_info["description"],
        )
    )
