"""``atombench classify``: sort atom columns into sublattices."""

from __future__ import annotations

from pathlib import Path

from . import UserError, integer, output_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="sort atom columns into sublattices by intensity",
        description="Classify columns by a Gaussian mixture of a per-column feature (class count by BIC "
        "unless given) and write the positions CSV with a 'class' column (0 = dimmest).",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("positions", type=Path, help="positions CSV (x_px,y_px)")
    parser.add_argument("--out", type=output_file, required=True, help="output CSV with a 'class' column")
    parser.add_argument("--n-classes", default="auto", help="number of classes or 'auto' (BIC; default)")
    parser.add_argument("--feature", choices=["integrated_intensity", "peak", "sigma"], default="integrated_intensity")
    parser.add_argument("--max-classes", type=integer(1), default=5, help="largest class count 'auto' tries")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help="column polarity (dark: ABF/BF, mirrored before measuring; default auto)")
    parser.set_defaults(func=run_classify)


def run_classify(args) -> int:
    from ..core.classify import classify_columns
    from ..core.io import read_image, read_positions, resolve_pixel_size, write_positions

    n_classes = args.n_classes
    if n_classes != "auto":
        try:
            n_classes = int(n_classes)
        except ValueError:
            raise UserError(f"--n-classes must be an integer or 'auto'; got {args.n_classes!r}") from None
    image, image_px, _ = read_image(args.image)
    table = read_positions(args.positions)
    pixel_size_A, _ = resolve_pixel_size((str(args.image), image_px), (str(args.positions), table.pixel_size_A))
    result = classify_columns(image, table.positions_rc, n_classes, args.feature, max_classes=args.max_classes,
                              contrast=args.contrast)
    write_positions(args.out, table.positions_rc, pixel_size_A=pixel_size_A,
                    features={"class": result.classes})
    for k in range(result.n_classes):
        print(f"class {k}: {result.counts[k]} columns, mean {args.feature} {result.means[k, 0]:.4g} "
              f"± {result.stds[k, 0]:.3g}")
    print(f"{result.n_classes} classes ({'BIC' if args.n_classes == 'auto' else 'given'}, "
          f"{result.contrast_used} columns); written to {args.out}")
    return 0
