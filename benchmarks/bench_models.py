"""Forward-pass timing of the four published networks: original-fidelity path vs default path.

Usage::

    PYTHONPATH=. python benchmarks/bench_models.py [--sizes 256 512 1024 2048] [--nets A B C D]
        [--threads 2] [--no-bf16] [--shared ../shared]

For each network and square size S: the network forward of the original-fidelity
path (eval + no_grad, contiguous; NestedUNet in train-mode BN with autograd on, as
the benchmark wrapper), of the default path (inference_mode, channels_last, tiles
with overlap for large images) and of the optional bf16 default path. Prints the
median time, achieved GFLOP/s (conv FLOPs of the actual work, 2·MAC), the ratio
to our original path and to the time the spec measured for the original code on
this machine (§8, torch 2.13). First a kernel table: fp32 vs bf16 3×3 convolution
throughput on this CPU, the ceiling of any bf16 mode. Then, per network, how many
positions the bf16 and default paths keep unchanged (within 0.1 px) on a 512²
simulated image.

The weights are the fixture state_dicts (random but calibrated) and the real cubic
checkpoint; timing does not depend on the values. The machine is shared: report
the load average printed at the top together with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_atombench.core.simulate import SRTIO3_100, simulate_crystal
from napari_atombench.models.registry import ModelSpec, get_locator

NETS = {
    "A": ("A_unet_sigmoid", "atomsegnet", "unet"),
    "B": ("B_nestedunet", "atomsegnet", "nestedunet"),
    "C": ("C_atomsegnet_gain", "atomnet", "atomsegnet"),  # gain: a non-degenerate map
    "D": ("D_resatomsegnet_s2_cubic", "atomnet", "resatomsegnet_s2"),
}
#: spec §8, torch 2.13, as-benchmark mode, median seconds
SPEC_S = {
    ("A", 256): 0.38, ("A", 512): 2.13, ("A", 1024): 11.03,
    ("B", 256): 0.52, ("B", 512): 2.93, ("B", 1024): 15.51,
    ("C", 256): 0.11, ("C", 512): 0.51, ("C", 1024): 3.23,
    ("D", 256): 0.11, ("D", 512): 0.59, ("D", 1024): 3.85,
}


def conv_flops_per_px(net: torch.nn.Module, side: int = 256) -> float:
    """Conv + transposed-conv-free FLOPs (2·MAC) per input pixel, by forward hooks."""
    macs = [0]

    def hook(mod, inp, out):
        macs[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(1, 1, side, side))
    for h in handles:
        h.remove()
    return 2 * macs[0] / side**2


def kernel_table(threads: int) -> None:
    """fp32 vs bf16 3×3 convolution throughput (oneDNN) on this CPU: the ceiling of any bf16 mode."""
    import copy

    print(f"3x3 conv kernels, 1 x C x 256 x 256, channels_last, {threads} threads:")
    print(f"{'C':>4} {'fp32 GFLOP/s':>13} {'bf16 GFLOP/s':>13} {'bf16/fp32':>10}")
    for ch in (32, 64, 128):
        conv = torch.nn.Conv2d(ch, ch, 3, padding=1).eval().to(memory_format=torch.channels_last)
        x = torch.rand(1, ch, 256, 256).contiguous(memory_format=torch.channels_last)
        conv_bf, x_bf = copy.deepcopy(conv).to(torch.bfloat16), x.to(torch.bfloat16)
        rates = []
        with torch.inference_mode():
            for net, inp in ((conv, x), (conv_bf, x_bf)):
                for _ in range(3):
                    net(inp)
                t = timed(lambda: net(inp), 10)[0]
                rates.append(2 * ch * ch * 9 * 256 * 256 / t / 1e9)
        print(f"{ch:>4} {rates[0]:>13.0f} {rates[1]:>13.0f} {rates[1] / rates[0]:>9.2f}x", flush=True)
    print()


def timed(fn, repeats: int) -> tuple[float, float, float]:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), max(ts)


def original_forward(loc, x: np.ndarray):
    """The original wrapper's network call on an (already padded) input."""
    t = torch.from_numpy(x)[None, None]
    if loc.spec.architecture == "nestedunet":  # autograd on, train-mode BN
        return loc.net(t)
    with torch.no_grad():
        return loc.net(t)


def padded_work_px(loc, side: int) -> int:
    """Pixels the default path actually runs through the network (tiles overlap)."""
    from napari_atombench.models._pipeline import plan_tiles

    if loc.spec.architecture == "nestedunet" and side <= loc.tile_size:
        p = max(128, 1 << (side - 1).bit_length())
        return p * p
    if side <= loc.tile_size:
        return side * side
    t, starts = plan_tiles(side, loc.tile_size, loc.overlap_px, loc.stride)
    return len(starts) ** 2 * t * t


def atombench_table(threads: int, v3_weights: Path | None, shared: Path, side: int = 1024, repeats: int = 3) -> int:
    """atombench at ``side``² (already at the trained sampling): time of each network path
    and its ratio to the v2 path, positions kept (one-to-one within 0.1 px); then the
    whole user-facing ``locate`` (sampling wrapper: lattice estimate, contrast auto,
    resampling, peaks) with and without the pixel size, against the published cubic
    AtomNet through its original-fidelity path in the same run."""
    from napari_atombench.core.match import match_positions

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    image = simulate_crystal(SRTIO3_100, shape=(side, side), pixel_size_A=0.2, seed=1).image
    paths = [("v2 path (fp32, BN, contiguous)", dict(fast=False)), ("v3 path fp32", {}),
             ("v3 path bf16", dict(bf16=True)), ("v3 path bf16=auto", dict(bf16="auto"))]
    if v3_weights is not None:
        paths.append((f"{v3_weights.name}, v3 path fp32", dict(weights=v3_weights)))
    ref_t = ref_pos = None
    print(f"{'path':<32} {'median s':>9} {'[min-max]':>15} {'vs v2':>7} {'n':>6} {'kept':>7}")
    for name, opts in paths:
        loc = get_locator("atombench", device="cpu", sampling_aware=False, **opts)
        loc.locate(image[:256, :256])  # warm-up
        med, lo, hi = timed(lambda: loc.locate(image), repeats)
        pos = loc.locate(image).positions_rc
        if ref_t is None:
            ref_t, ref_pos = med, pos
        kept = match_positions(pos, ref_pos, 0.1).n_tp / max(len(ref_pos), 1)
        print(f"{name:<32} {med:>9.3f} {f'[{lo:.2f}-{hi:.2f}]':>15} {ref_t / med:>6.2f}x {len(pos):>6} {100 * kept:>6.1f}%",
              flush=True)
    full_locate_table(image, shared, repeats)
    return 0


def full_locate_table(image: np.ndarray, shared: Path, repeats: int) -> None:
    """The whole ``locate`` a user runs, and its ratio to the cubic AtomNet's original path."""
    cubic_weights = shared / "weights" / "cubic-best_weights.pt"
    cubic_t = None
    if cubic_weights.is_file():
        cubic = get_locator("atomnet-cubic", weights=cubic_weights, device="cpu", fidelity="original")
        cubic.locate(image[:256, :256])
        cubic_t = timed(lambda: cubic.locate(image), 1)[0]
    runs = [("atombench locate, 0.2 A/px", dict(pixel_size_A=0.2)),
            ("atombench locate, no pixel size", dict(pixel_size_A=None))]
    loc = get_locator("atombench", device="cpu")
    loc.locate(image[:256, :256], 0.2)
    print(f"\nwhole locate at {image.shape[0]}² (contrast auto):")
    print(f"{'run':<34} {'median s':>9} {'[min-max]':>15} {'vs cubic orig':>14}")
    for name, kw in runs:
        med, lo, hi = timed(lambda: loc.locate(image, **kw), repeats)
        ratio = f"{med / cubic_t:>13.3f}x" if cubic_t else f"{'-':>14}"
        print(f"{name:<34} {med:>9.3f} {f'[{lo:.2f}-{hi:.2f}]':>15} {ratio}", flush=True)
    if cubic_t:
        print(f"{'atomnet-cubic locate, original':<34} {cubic_t:>9.3f} {'(1 run)':>15} {1.0:>13.3f}x")
    else:
        print(f"atomnet-cubic: no weights at {cubic_weights}; ratio not measured")


def speed_table(args, fixtures: Path) -> None:
    """Seconds per forward pass of each net's original, default and bf16 paths, per image side."""
    header = f"{'net':<3} {'S':>5} {'path':<9} {'median s':>9} {'[min-max]':>15} {'GFLOP/s':>8} {'vs ours-orig':>12} {'vs spec':>8}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for key in args.nets:
        case, family, arch = NETS[key]
        spec = ModelSpec(name=f"bench-{key}", family=family, architecture=arch)
        weights = fixtures / f"{case}_state.pt"
        orig = get_locator(spec, weights, device="cpu", fidelity="original")
        dflt = get_locator(spec, weights, device="cpu", fidelity="default")
        bf16 = None if args.no_bf16 else get_locator(spec, weights, device="cpu", fidelity="default", bf16=True)
        flops_px = conv_flops_per_px(orig.net.eval() if arch != "nestedunet" else orig.net)
        orig.net.train(arch == "nestedunet")
        for side in args.sizes:
            x = rng.random((side, side), dtype=np.float32)
            repeats = 3 if side <= 512 else 1
            xo = x
            if arch == "nestedunet":
                p = max(128, 1 << (side - 1).bit_length())
                xo = np.pad(x, ((0, p - side), (0, p - side)))
            rows = []
            # original path
            if args.no_original:
                rows.append(("original", None, "not run (--no-original)"))
            elif arch == "nestedunet" and side > 1024:
                rows.append(("original", None, "skipped: train-mode BN + autograd at 2048² needs > 20 GB"))
            else:
                original_forward(orig, xo[:256, :256] if side > 512 else xo)  # warm-up
                rows.append(("original", timed(lambda: original_forward(orig, xo), repeats), xo.size))
            for name, loc in (("default", dflt), ("bf16", bf16)):
                if loc is None:
                    continue
                loc._forward_map(x[: min(side, 256), : min(side, 256)], None, None)  # warm-up
                rows.append((name, timed(lambda: loc._forward_map(x, None, None), repeats), padded_work_px(loc, side)))
            t_orig = rows[0][1][0] if rows[0][1] else None
            for name, t, work in rows:
                if t is None:
                    print(f"{key:<3} {side:>5} {name:<9} {work}")
                    continue
                med, lo, hi = t
                gflops = flops_px * work / med / 1e9
                vs_orig = f"{t_orig / med:>11.2f}x" if t_orig else f"{'-':>12}"
                ref = SPEC_S.get((key, side))
                vs_spec = f"{ref / med:>7.2f}x" if ref else f"{'-':>8}"
                print(f"{key:<3} {side:>5} {name:<9} {med:>9.3f} {f'[{lo:.2f}-{hi:.2f}]':>15} {gflops:>8.1f} {vs_orig} {vs_spec}", flush=True)


def positions_table(args, fixtures: Path) -> None:
    """Positions kept by the default and bf16 paths (vs the fp32 reference, same post-processing)."""
    # positions kept by the default and bf16 paths (vs the original network map, same post-processing)
    print()
    print("positions on a 512² simulated SrTiO3 image (default post-processing):")
    sim = simulate_crystal(SRTIO3_100, shape=(512, 512), pixel_size_A=0.2, seed=1).image
    print(f"{'net':<3} {'path':<8} {'n':>6} {'n fp32':>7} {'unchanged (<0.1 px)':>20}")
    for key in args.nets:
        case, family, arch = NETS[key]
        spec = ModelSpec(name=f"bench-{key}", family=family, architecture=arch)
        weights = args.shared / "weights" / "cubic-best_weights.pt" if key == "D" else fixtures / f"{case}_state.pt"
        ref = get_locator(spec, weights, device="cpu", channels_last=False).locate(sim).positions_rc
        for name, opts in (("default", {}), ("bf16", {"bf16": True})):
            if name == "bf16" and args.no_bf16:
                continue
            pos = get_locator(spec, weights, device="cpu", **opts).locate(sim).positions_rc
            if len(ref) and len(pos):
                d = np.sqrt(((ref[:, None] - pos[None]) ** 2).sum(-1)).min(axis=1)
                kept = 100 * np.mean(d < 0.1)
            else:
                kept = float("nan")
            print(f"{key:<3} {name:<8} {len(pos):>6} {len(ref):>7} {kept:>19.2f}%", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-original", action="store_true", help="skip the original path (e.g. at 2048²)")
    parser.add_argument("--no-positions", action="store_true", help="skip the positions check")
    parser.add_argument("--kernels", action="store_true", help="only the fp32 vs bf16 conv kernel table")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--atombench", action="store_true",
                        help="only our atombench: v2 path (unfolded BN, contiguous, concatenated skips) vs the v3 path "
                        "(folded BN, channels_last, split skip convolutions, one tile; fp32 and bf16) at 1024², then "
                        "the whole locate against the cubic AtomNet's original path")
    parser.add_argument("--v3-weights", "--weights", type=Path, help="also time these atombench weights (--atombench)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.atombench:
        return atombench_table(args.threads, args.v3_weights, args.shared)
    fixtures = args.shared / "fixtures" / "models"
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    kernel_table(args.threads)
    if args.kernels:
        return 0
    speed_table(args, fixtures)
    if not args.no_positions:
        positions_table(args, fixtures)
    print(f"load average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
