"""``atombench score``: predicted positions against labels."""

from __future__ import annotations

import json
from pathlib import Path

from . import pixel_size_A, positive


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score predicted positions against labels (recall, precision, RMSE, pass)",
        description="Score predicted atom-column positions against labels, both CSV files. "
        "Default: one-to-one matching within 0.5 Å (3 px without a pixel size). The pixel "
        "size comes from --pixel-size-A, else from the x_A/y_A columns of the labels or "
        "prediction file. With --paper-compatible, TPs are counted as in the benchmark "
        "authors' notebooks (every pair closer than sqrt(5) px, many-to-many).",
    )
    parser.add_argument("predicted", type=Path, metavar="PRED.csv")
    parser.add_argument("truth", type=Path, metavar="TRUTH.csv")
    parser.add_argument("--pixel-size-A", type=pixel_size_A, help="Å per pixel")
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument("--max-distance-A", type=positive, default=0.5, help="matching radius in Å (default 0.5)")
    radius.add_argument("--max-distance-px", type=positive, help="matching radius in pixels")
    parser.add_argument("--paper-compatible", action="store_true", help="the benchmark notebooks' counting")
    parser.add_argument("--image-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                        help="image size; --paper-compatible needs it (its 1 %% edge rule)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=run_score)


def run_score(args) -> int:
    from ..core.io import read_positions, resolve_pixel_size
    from ..core.metrics import score_positions

    predicted, truth = read_positions(args.predicted), read_positions(args.truth)
    pixel_size_A, _ = resolve_pixel_size(("--pixel-size-A", args.pixel_size_A), (str(args.truth), truth.pixel_size_A),
                                         (str(args.predicted), predicted.pixel_size_A))
    score = score_positions(
        predicted.positions_rc,
        truth.positions_rc,
        pixel_size_A=pixel_size_A,
        max_distance_A=args.max_distance_A,
        max_distance_px=args.max_distance_px,
        paper_compatible=args.paper_compatible,
        image_shape=tuple(args.image_shape) if args.image_shape else None,
    )
    if args.json:
        print(json.dumps(score.as_dict()))
    else:
        for key, value in score.as_dict().items():
            print(f"{key:>17}: {f'{value:.4f}' if isinstance(value, float) else value}")
    return 0
