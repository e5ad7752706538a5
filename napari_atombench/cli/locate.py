"""``atombench locate``: find atom columns in an image with a named model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models.registry import DEFAULT_MODEL
from . import device_name, integer, number, output_file, pixel_size_A

#: Largest --rescale: an 8x upsampled 2048² image is already 1 GiB of float32 per map.
MAX_RESCALE = 8.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "locate",
        help="find atom columns in an image with a named model",
        description="Run an atom-locating model and write x_px,y_px (the image's own frame) to CSV.",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"registry or adapted model name, or an adapted .pt (see `atombench models`; default: {DEFAULT_MODEL}, ours)")
    parser.add_argument("--pixel-size-A", dest="pixel_size_A", type=pixel_size_A,
                        help="override the file's pixel size (Å/px)")
    parser.add_argument("--weights", type=Path, help="checkpoint file of the same architecture")
    parser.add_argument("--fidelity", choices=("default", "original"), default="default")
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.add_argument("--rescale", type=number(0.0, MAX_RESCALE, low_open=True), default=1.0,
                        help=f"resize factor before the network, in (0, {MAX_RESCALE:g}]")
    parser.add_argument("--tile-size", type=integer(16), help="tile side in px (default pipeline)")
    parser.add_argument("--threshold", type=number(0.0, 1.0, low_open=True, high_open=True),
                        help="probability threshold in (0, 1) (AtomNet models)")
    parser.add_argument("--refine", action="store_true", help="refine positions by Gaussian fits")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (default pipeline; faster only where the CPU or GPU has fast bf16 kernels: on the 2-core Zen 4 development VM it is slower, see docs/models.md)")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"),
                        help="column polarity: bright (HAADF), dark (ABF/BF), auto (decided from the image; "
                             "atombench models default to auto)")
    parser.add_argument("--light-columns", action="store_true",
                        help="also count light columns between heavy ones (O in iDPC/ABF images); atombench "
                             "v3 weights only; default: the heavy-column convention of HAADF")
    parser.add_argument("--out", type=output_file, help="positions CSV to write (default: IMAGE_<model>.csv)")
    parser.add_argument("--map-out", type=output_file, help="write the probability map as .npy")
    parser.set_defaults(func=run_locate)


def run_locate(args: argparse.Namespace) -> int:
    import numpy as np

    from ..core.io import atomic_write_bytes, read_image, resolve_pixel_size, write_positions
    from ..models.registry import get_locator

    image, image_px, _ = read_image(args.image)
    pixel_size_A, _ = resolve_pixel_size(("--pixel-size-A", args.pixel_size_A), (str(args.image), image_px))
    out = args.out or args.image.with_name(f"{args.image.stem}_{Path(args.model).stem}.csv")
    options = {"rescale": args.rescale, "refine": args.refine, "bf16": args.bf16}
    if args.tile_size is not None:
        options["tile_size"] = args.tile_size
    if args.threshold is not None:
        options["threshold"] = args.threshold
    if args.contrast is not None:
        options["contrast"] = args.contrast
    if args.light_columns:
        options["light_columns"] = True
    locator = get_locator(args.model, weights=args.weights, device=args.device, fidelity=args.fidelity, **options)
    result = locator.locate(image, pixel_size_A)
    write_positions(out, result.positions_rc, pixel_size_A=pixel_size_A)
    if args.map_out is not None and result.probability_map is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, result.probability_map)
        atomic_write_bytes(args.map_out, buf.getvalue())
    frame = result.metadata.get("frame", "image")
    polarity = result.metadata.get("contrast_used")
    polarity = f", contrast: {polarity}" if polarity else ""
    print(f"{len(result.positions_rc)} positions ({args.model}, {args.fidelity}, frame: {frame}{polarity}) -> {out}")
    return 0
