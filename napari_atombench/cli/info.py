"""``atombench info``: an image's shape, pixel size and metadata."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show an image's shape, pixel size and metadata")
    parser.add_argument("image", type=Path)
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=run_info)


def run_info(args) -> int:
    from ..core.io import read_image

    image, pixel_size_A, metadata = read_image(args.image, allow_stack=True, nan_policy="replace")
    info = {
        "path": str(args.image),
        "shape": list(image.shape),
        "pixel_size_A": pixel_size_A,
        "min": float(image.min()),
        "max": float(image.max()),
        **{k: v for k, v in metadata.items() if k not in ("source_path",)},
    }
    if args.json:
        print(json.dumps(info, default=str))
    else:
        for key, value in info.items():
            print(f"{key:>22}: {value}")
    return 0
