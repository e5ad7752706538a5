"""``atombench simulate``: an HR-STEM image with exact labels."""

from __future__ import annotations

from . import UserError, integer, non_negative, number, output_file, positive


#: Largest simulated side (px): 16384² float64 scratch arrays already take GBs.
MAX_SIMULATED_SIDE_PX = 16384
_finite, _fraction = number(), number(0.0, 1.0)
#: (keyword of core.simulate.simulate, type, CLI default or None for the simulator's default);
#: the simulator checks the physics (e.g. positive pixel size), the types finiteness and range.
_SIMULATE_KNOBS = [
    ("pixel_size_pm", positive, None), ("resolution_pm", positive, None), ("contrast", _finite, None),
    ("background", _finite, None), ("background_gradient", _finite, None), ("dose_e_per_A2", positive, None),
    ("psnr_db", _finite, None), ("read_noise", non_negative, None), ("random_drift", non_negative, None),
    ("flyback_error", non_negative, None), ("line_jitter", non_negative, None), ("z_exponent", _finite, None),
    ("mode", str, None), ("rotation_deg", _finite, None), ("vacancy_fraction", _fraction, None),
    ("substitution_fraction", _fraction, None), ("boundary", str, None), ("boundary_rotation_deg", _finite, None),
    ("boundary_crystal", str, None), ("adatoms_per_nm2", non_negative, None), ("amorphous", _fraction, None),
    ("label_min_weight", non_negative, None), ("seed", integer(0), None),
]

#: KernelOptions fields settable from the command line (with --kernels only)
_KERNEL_KNOBS = [("kv", positive), ("convergence_mrad", positive), ("thickness_A", positive),
                 ("adatom_depth_A", non_negative), ("source_size_pm", non_negative)]


def _kernel_options(args):
    """``KernelOptions`` from ``--kernels`` and its knobs; a knob without ``--kernels`` is an error."""
    given = {k: getattr(args, k) for k, _ in _KERNEL_KNOBS if getattr(args, k) is not None}
    if args.kernel_library is not None:
        given["library"] = args.kernel_library
    if args.allow_unvalidated:
        given["require_accepted"] = False
    if args.kernels is None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UserError(f"{flags} set how column kernels render: add --kernels haadf|bf|abf|idpc")
        return None
    from ..core.column_kernels import KernelOptions

    return KernelOptions(detector=args.kernels, **given)


def register(subparsers) -> None:
    from ..core.simulate import CRYSTALS

    parser = subparsers.add_parser(
        "simulate",
        help="simulate an HR-STEM image with exact labels (TIFF + labels CSV)",
        description="Simulate an image of a crystal projection; knobs in physical units.",
    )
    parser.add_argument("crystal", choices=sorted(CRYSTALS) + ["none"], help="crystal ('none': single atoms only)")
    parser.add_argument("--out-image", type=output_file, required=True)
    parser.add_argument("--out-labels", type=output_file, required=True)
    parser.add_argument("--size", type=integer(8, MAX_SIMULATED_SIDE_PX), nargs="+", default=[256],
                        help="rows [cols] in pixels")
    for knob, kind, default in _SIMULATE_KNOBS:
        parser.add_argument("--" + knob.replace("_", "-"), dest=knob, type=kind, default=default)
    parser.add_argument("--species", nargs="+", help="render and label only these species")
    parser.add_argument("--uint16", action="store_true", help="store the image as uint16 counts")
    kernels = parser.add_argument_group("physical image formation (abTEM column kernels, docs/simulator.md)")
    kernels.add_argument("--kernels", choices=("haadf", "bf", "abf", "idpc"),
                         help="render by summing multislice column kernels of this detector")
    for knob, kind in _KERNEL_KNOBS:
        kernels.add_argument("--" + knob.replace("_", "-"), dest=knob, type=kind)
    kernels.add_argument("--kernel-library", type=str, help="a column-kernel .npz (default: the packaged one)")
    kernels.add_argument("--allow-unvalidated", action="store_true",
                         help="render a detector whose kernel sums failed validation against full multislice")
    parser.set_defaults(func=run_simulate)


def run_simulate(args) -> int:
    from ..core.simulate import CRYSTALS, write_simulation

    knobs = {k: getattr(args, k) for k, _, _ in _SIMULATE_KNOBS if getattr(args, k) is not None}
    if args.species:
        known = sorted({name for *_, name in CRYSTALS[args.crystal].basis}) if args.crystal != "none" else []
        unknown = sorted(set(args.species) - set(known))
        if unknown:
            raise UserError(f"--species {' '.join(unknown)}: not in {args.crystal} (its species: {', '.join(known)})")
        knobs["species"] = args.species
    if len(args.size) > 2:
        raise UserError(f"--size takes ROWS [COLS], not {len(args.size)} numbers")
    size = args.size if len(args.size) == 2 else [args.size[0], args.size[0]]
    kernels = _kernel_options(args)
    if kernels is not None:
        knobs.update(image_formation="kernels", kernels=kernels)
    crystal = None if args.crystal == "none" else args.crystal
    sim = write_simulation(args.out_image, args.out_labels, crystal, shape=tuple(size), uint16=args.uint16, **knobs)
    print(f"{args.out_image}: {sim.image.shape}, {len(sim.positions_rc)} columns -> {args.out_labels}")
    return 0
