"""``atombench finetune``: adapt a model to one image from hand labels of a region."""

from __future__ import annotations

from pathlib import Path

from ..models.registry import DEFAULT_MODEL
from . import UserError, device_name, integer, non_negative, output_file, pixel_size_A


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="adapt a model to one image from hand labels of a region",
        description="Fine-tune an atombench model on the labels of one region of an image (every column in "
        "the region labelled; the rest of the image is not used as negatives) and write the adapted "
        "weights (.pt with its card) for `atombench locate --weights`.",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("labels", type=Path, help="positions CSV (x_px,y_px) of every column in the region")
    parser.add_argument("--out", type=output_file,
                        help="adapted weights file (.pt); default: IMAGE-MODEL-adapted.pt in the user models folder, "
                        "where `atombench models` lists it and --model finds it by name")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to start from (atombench family; default {DEFAULT_MODEL})")
    parser.add_argument("--weights", type=Path, help="start from this checkpoint instead (e.g. an adapted .pt)")
    parser.add_argument("--region", type=non_negative, nargs=4, metavar=("R0", "C0", "R1", "C1"),
                        help="labelled box in pixels, end exclusive (default: the labels' bounding box)")
    parser.add_argument("--steps", type=integer(1), default=300, help="most training steps (default 300)")
    parser.add_argument("--pixel-size-A", dest="pixel_size_A", type=pixel_size_A, help="override the file's pixel size (Å/px)")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help="column polarity rule, kept in the adapted model's card (default auto)")
    parser.add_argument("--light-columns", action="store_true",
                        help="the labels count light columns between heavy ones (O in iDPC/ABF); atombench v3 "
                             "weights only; kept in the adapted model's card")
    parser.add_argument("--seed", type=integer(0), default=0)
    parser.add_argument("--threads", type=integer(1), help="torch CPU threads while training")
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.set_defaults(func=run_finetune)


def run_finetune(args) -> int:
    from ..core.io import read_image, read_positions, resolve_pixel_size
    from ..models.finetune import finetune, save_adapted_weights

    if args.out is not None and args.out.suffix not in (".pt", ".pth"):
        raise UserError(f"--out {args.out}: adapted weights must be a .pt or .pth file")
    image, image_px, _ = read_image(args.image)
    labels_table = read_positions(args.labels)
    labels = labels_table.positions_rc
    pixel_size_A, _ = resolve_pixel_size(("--pixel-size-A", args.pixel_size_A), (str(args.image), image_px),
                                         (str(args.labels), labels_table.pixel_size_A))
    last = [-1]

    def progress(done: int, total: int) -> None:
        if done * 10 // total != last[0]:
            last[0] = done * 10 // total
            print(f"step {done}/{total}", flush=True)

    from ..models.registry import adapted_model_path, get_locator

    extra = {"light_columns": True} if args.light_columns else {}
    base = get_locator(args.model, weights=args.weights, device=args.device, contrast=args.contrast, **extra)
    result = finetune(base, image, labels, region=args.region, steps=args.steps,
                      pixel_size_A=pixel_size_A, weights=args.weights,
                      image_name=args.image.name, seed=args.seed, device=args.device, threads=args.threads,
                      progress=progress)
    out = save_adapted_weights(result, args.out or adapted_model_path(args.image.name, result.card["base_model"]))
    card = result.card
    print(f"validation F1 {card['validation_f1_before']:.3f} -> {card['validation_f1']:.3f} on "
          f"{card['n_labels_validation']} held-out labels; {card['steps']} steps kept of {card['steps_run']} run "
          f"({card['stopped']}), {card['seconds']:.0f} s; written to {out}")
    return 0
