"""``atombench train``: train an architecture on simulated images."""

from __future__ import annotations

import sys
from pathlib import Path

from . import UserError, check_input_file, device_name, integer, number, output_file, pixel_size_A, positive


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model architecture on simulated images",
        description="Train ARCH (atombench_unet, resatomsegnet_s2, atomsegnet, unet, nestedunet) on "
        "simulated images generated on the fly; checkpoints are resumable.",
    )
    parser.add_argument("arch")
    parser.add_argument("--steps", type=integer(1), default=1000)
    parser.add_argument("--out", type=output_file, required=True, help="checkpoint file (.pt)")
    parser.add_argument("--quick", action="store_true", help="at most 5 steps on tiny 32² crops (tests)")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--seed", type=integer(0), default=0)
    parser.add_argument("--batch-size", type=integer(1), default=8)
    parser.add_argument("--crop", type=integer(16), default=128, help="training crop side in pixels")
    parser.add_argument("--pool-size", type=integer(1), default=2000, help="simulated scenes generated up front")
    parser.add_argument("--lr", type=positive, default=2e-3)
    parser.add_argument("--threads", type=integer(1), help="torch CPU threads")
    parser.add_argument("--max-minutes", type=positive, help="stop (and checkpoint) after this wall time")
    parser.add_argument("--base-channels", type=integer(1), default=16, help="atombench_unet width")
    parser.add_argument("--native-pixel-size", type=pixel_size_A, nargs=2, metavar=("MIN_A", "MAX_A"),
                        help="simulate scenes at pixel sizes in this range (Å) and resample them to the "
                        "trained sampling, as inference does (default: the trained pixel size ± 25 %%)")
    parser.add_argument("--normalize-window", type=integer(3), metavar="PX",
                        help="atombench_unet: standardise inference inputs in a sliding window of this side "
                        "(use the crop size); default: whole image")
    parser.add_argument("--resolution-pm", type=positive, nargs=2, metavar=("MIN_PM", "MAX_PM"),
                        help="probe FWHM range (pm), log-uniform, capped where labelled columns would merge "
                        "(default: uniform 60-125 pm)")
    parser.add_argument("--modalities", action="store_true",
                        help="v3 recipe: add ABF, iDPC-like, low-dose light-element, nanoparticle and thick-support "
                        "scenes and JPEG/low-pass/row-offset artefacts (label policy: docs/models.md)")
    parser.add_argument("--seen-labels", action="store_true",
                        help="label only the columns that can be seen and placed one by one (matched-filter SNR >= 5 "
                        "and enough to place them within 0.5 Å, resolved from their neighbours) and leave the "
                        "pixels around the others out of the loss (the recipe of the v4 experiment, "
                        "docs/models-ours.md); default: every column the contrast-weight policy counts")
    parser.add_argument("--modality-share", action="append", metavar="KIND=SHARE", default=[],
                        help="with --modalities: share of the pool for one modality kind (abf, idpc, light_lowdose, "
                        "nanoparticle, thick_support), e.g. thick_support=0.2; repeatable")
    parser.add_argument("--polarity-negatives", type=number(0.0, 1.0, high_open=True), default=0.0, metavar="P",
                        help="share of training crops shown with inverted contrast and an empty target, so the "
                        "network answers only the right polarity (what contrast='auto' votes with); default 0")
    parser.add_argument("--broad-thick-probes", action="store_true",
                        help="with --modalities: thick-support scenes keep their broad probes (up to the top of "
                        "--resolution-pm, as validation draws them) instead of the resolvable cap; implied by "
                        "--seen-labels")
    parser.add_argument("--pool-workers", type=integer(1), default=1,
                        help="processes generating the --modalities pool (same pool for any number)")
    parser.add_argument("--export-weights", type=output_file, help="also write fp16 weights + JSON record here")
    parser.add_argument("--init-weights", type=Path, metavar="PT",
                        help="start from these weights (e.g. the shipped atombench.pt) instead of a random network; "
                        "its SHA-256 is recorded in the checkpoint")
    parser.set_defaults(func=run_train)


def run_train(args) -> int:
    from ..models.train import TrainConfig, export_weights, train

    for flag, pair in (("--native-pixel-size", args.native_pixel_size), ("--resolution-pm", args.resolution_pm)):
        if pair and pair[0] > pair[1]:
            raise UserError(f"{flag} {pair[0]:g} {pair[1]:g}: give MIN then MAX")
    check_input_file("--resume", args.resume)
    check_input_file("--init-weights", args.init_weights)
    if args.resume is not None and args.init_weights is not None:
        raise UserError("--init-weights and --resume: a resumed run already has its weights; give one")
    shares = _modality_shares(args.modality_share, args.modalities)
    if args.broad_thick_probes and not args.modalities:
        raise UserError("--broad-thick-probes applies only with --modalities")
    if args.quick:
        args.steps, args.crop, args.pool_size, args.batch_size = min(args.steps, 5), 32, 4, 2
    config = TrainConfig(
        architecture=args.arch, steps=args.steps, batch_size=args.batch_size, crop_px=args.crop,
        pool_size=args.pool_size, lr=args.lr, seed=args.seed, device=args.device, threads=args.threads,
        max_minutes=args.max_minutes, checkpoint_every=50, log_every=1 if args.quick else 10,
        arch_kwargs={"base_channels": args.base_channels, "depth": 3} if args.arch == "atombench_unet" else {},
        native_pixel_size_A=tuple(args.native_pixel_size) if args.native_pixel_size else None,
        normalize_window_px=args.normalize_window,
        resolution_pm=tuple(args.resolution_pm) if args.resolution_pm else None,
        modalities=args.modalities, seen_labels=args.seen_labels, modality_shares=shares,
        pool_workers=args.pool_workers, polarity_negatives=args.polarity_negatives,
        broad_thick_probes=args.broad_thick_probes,
        init_weights=str(args.init_weights) if args.init_weights else None,
    )
    summary = train(config, args.out, resume=args.resume, log=lambda m: print(m, flush=True))
    if args.export_weights is not None:
        export_weights(args.out, args.export_weights, card={"command": "atombench " + " ".join(sys.argv[1:])})
    print(f"checkpoint {summary['checkpoint']} at step {summary['step']} ({summary['wall_s']:.0f} s)")
    return 0


def _modality_shares(items: list[str], modalities: bool) -> dict[str, float] | None:
    """``--modality-share KIND=SHARE`` options as a dict, checked (UserError naming the option)."""
    from ..models.train_data import modality_shares_checked

    if not items:
        return None
    if not modalities:
        raise UserError("--modality-share applies only with --modalities")
    shares = {}
    for item in items:
        kind, _, value = item.partition("=")
        try:
            shares[kind.strip()] = float(value)
        except ValueError:
            raise UserError(f"--modality-share {item!r}: give KIND=SHARE, e.g. thick_support=0.2") from None
    try:
        modality_shares_checked(shares)
    except ValueError as exc:
        raise UserError(f"--modality-share: {exc}") from None
    return shares
