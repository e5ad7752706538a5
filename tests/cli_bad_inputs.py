"""Bad command-line inputs for every ``atombench`` subcommand (shared by the CLI error tests).

:func:`make_bad_files` writes the hostile files into a folder; :data:`BAD_CASES`
lists ``(id, argv)`` with ``{d}`` standing for that folder. Each case must end
in exit 2 with one ``atombench <command>: error: ...`` line on stderr.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from napari_atombench.sample_data import sample_paths


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a weights file that would run code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_bad_files(d: Path) -> None:
    """Write the files the cases refer to into ``d``."""
    image, labels = sample_paths("srtio3")
    (d / "img.tif").write_bytes(Path(image).read_bytes())
    (d / "labels.csv").write_bytes(Path(labels).read_bytes())
    (d / "folder").mkdir()
    (d / "folder.tif").mkdir()
    (d / "folder.csv").mkdir()
    (d / "out_dir").mkdir()
    (d / "empty.tif").write_bytes(b"")
    (d / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("x_px,y_px\n")
    (d / "wrong_columns.csv").write_text("a,b\n1,2\n")
    (d / "text_values.csv").write_text("x_px,y_px\nfoo,bar\n")
    (d / "huge_field.csv").write_text("x_px,y_px\n" + "1" * 200_000 + ",2\n")
    (d / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (d / "not_a_checkpoint.pt").write_text("this is not a checkpoint\n")
    (d / "truncated.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    (d / "empty.pt").write_bytes(b"")
    with open(d / "malicious.pt", "wb") as handle:
        pickle.dump(_RunsCode(str(d / "PWNED")), handle, protocol=2)
    (d / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 600)
    (d / "empty.h5").write_bytes(b"")
    ds = d / "ds_no_cases"
    ds.mkdir()
    ds2 = d / "ds_bad_images"
    ds2.mkdir()
    (ds2 / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    (ds2 / "labels.csv").write_bytes(Path(labels).read_bytes())
    (ds2 / "cases.csv").write_text("case,image,labels,pixel_size_A\n" + "".join(
        f"{c},bad.tif,labels.csv,0.15\n" for c in "abc"))
    ds3 = d / "ds_ok"
    ds3.mkdir()
    (ds3 / "img.tif").write_bytes(Path(image).read_bytes())
    (ds3 / "labels.csv").write_bytes(Path(labels).read_bytes())
    (ds3 / "cases.csv").write_text("case,image,labels,pixel_size_A\na,img.tif,labels.csv,0.15\n")
    np.save(d / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    many = np.random.default_rng(0).uniform(0, 1000, (20_000, 2))
    (d / "many.csv").write_text("x_px,y_px\n" + "\n".join(f"{x},{y}" for x, y in many) + "\n")
    (d / "same.csv").write_text("x_px,y_px\n" + "5,5\n" * 3000)
    (d / "a_file").write_text("x")
    import torch

    # a plain state_dict that fits no atombench_unet width
    torch.save({"enc.0.0.weight": torch.zeros(3, 1, 3, 3)}, d / "narrow_state.pt")


IMG, LAB = "{d}/img.tif", "{d}/labels.csv"
LOC = ["locate", IMG, "--out", "{d}/o.csv", "--device", "cpu"]
SCORE = ["score", LAB, LAB]
REFINE = ["refine", IMG, LAB, "--out", "{d}/r.csv"]
SIM = ["simulate", "srtio3_100", "--out-image", "{d}/s.tif", "--out-labels", "{d}/s.csv", "--size", "48"]
TRAIN = ["train", "atombench_unet", "--quick", "--out", "{d}/t.pt", "--device", "cpu"]
BENCH = ["benchmark", "{d}/ds_ok", "--model", "atombench", "--out", "{d}/b.csv", "--no-progress",
         "--scheduler", "sync"]
ROB = ["robustness", "--model", "atombench", "--out", "{d}/rob", "--no-progress", "--scheduler", "sync",
       "--material", "srtio3", "--knob", "dose_e_per_A2=1e3:1e5", "--points", "2"]

BAD_CASES: list[tuple[str, list[str]]] = [
    # info
    ("info-missing", ["info", "{d}/missing.tif"]),
    ("info-directory", ["info", "{d}/folder"]),
    ("info-directory-with-image-suffix", ["info", "{d}/folder.tif"]),
    ("info-empty-tif", ["info", "{d}/empty.tif"]),
    ("info-garbage-tif", ["info", "{d}/garbage.tif"]),
    ("info-object-npy", ["info", "{d}/object.npy"]),
    ("info-csv-as-image", ["info", LAB]),
    # view (errors found before any window opens)
    ("view-screenshot-is-directory", ["view", IMG, "--no-model", "--screenshot", "{d}/out_dir"]),
    ("view-screenshot-not-png", ["view", IMG, "--no-model", "--screenshot", "{d}/shot.txt"]),
    ("view-missing-image", ["view", "{d}/missing.tif", "--no-model", "--screenshot", "{d}/v.png"]),
    ("view-image-is-directory", ["view", "{d}/folder.tif", "--no-model", "--screenshot", "{d}/v.png"]),
    ("view-missing-labels", ["view", IMG, "--labels", "{d}/missing.csv", "--no-model", "--screenshot", "{d}/v.png"]),
    ("view-unknown-sample", ["view", "--sample", "nope", "--no-model", "--screenshot", "{d}/v.png"]),
    ("view-unknown-model", ["view", IMG, "--model", "nope", "--screenshot", "{d}/v.png"]),
    # locate
    ("locate-missing-image", ["locate", "{d}/missing.tif", "--out", "{d}/o.csv"]),
    ("locate-image-is-directory", ["locate", "{d}/folder.tif", "--out", "{d}/o.csv"]),
    ("locate-unknown-model", LOC + ["--model", "nope"]),
    ("locate-unknown-device", ["locate", IMG, "--out", "{d}/o.csv", "--device", "tpu"]),
    ("locate-bad-device-index", ["locate", IMG, "--out", "{d}/o.csv", "--device", "cuda:x"]),
    ("locate-weights-not-checkpoint", LOC + ["--weights", "{d}/not_a_checkpoint.pt"]),
    ("locate-weights-truncated-zip", LOC + ["--weights", "{d}/truncated.pt"]),
    ("locate-weights-empty", LOC + ["--weights", "{d}/empty.pt"]),
    ("locate-weights-malicious-pickle", LOC + ["--weights", "{d}/malicious.pt"]),
    ("locate-weights-directory", LOC + ["--weights", "{d}/folder"]),
    ("locate-weights-missing", LOC + ["--weights", "{d}/missing.pt"]),
    ("locate-pixel-size-zero", LOC + ["--pixel-size-A", "0"]),
    ("locate-pixel-size-tiny", LOC + ["--pixel-size-A", "1e-9"]),
    ("locate-pixel-size-inf", LOC + ["--pixel-size-A", "inf"]),
    ("locate-pixel-size-nan", LOC + ["--pixel-size-A", "nan"]),
    ("locate-pixel-size-negative", LOC + ["--pixel-size-A", "-0.1"]),
    ("locate-pixel-size-text", LOC + ["--pixel-size-A", "abc"]),
    ("locate-rescale-zero", LOC + ["--rescale", "0"]),
    ("locate-rescale-negative", LOC + ["--rescale", "-2"]),
    ("locate-rescale-nan", LOC + ["--rescale", "nan"]),
    ("locate-threshold-nan", LOC + ["--threshold", "nan"]),
    ("locate-threshold-one", LOC + ["--threshold", "1"]),
    ("locate-threshold-negative", LOC + ["--threshold", "-0.5"]),
    ("locate-tile-size-zero", LOC + ["--tile-size", "0"]),
    ("locate-tile-size-negative", LOC + ["--tile-size", "-64"]),
    ("locate-out-is-directory", ["locate", IMG, "--device", "cpu", "--out", "{d}/out_dir"]),
    ("locate-out-under-a-file", ["locate", IMG, "--device", "cpu", "--out", "{d}/a_file/o.csv"]),
    ("locate-map-out-is-directory", LOC + ["--map-out", "{d}/out_dir"]),
    # models
    ("models-extra-argument", ["models", "extra"]),
    # score
    ("score-missing-pred", ["score", "{d}/missing.csv", LAB]),
    ("score-pred-is-directory", ["score", "{d}/folder.csv", LAB]),
    ("score-empty-csv", ["score", "{d}/empty.csv", LAB]),
    ("score-wrong-columns", ["score", "{d}/wrong_columns.csv", LAB]),
    ("score-text-values", ["score", "{d}/text_values.csv", LAB]),
    ("score-huge-field", ["score", "{d}/huge_field.csv", LAB]),
    ("score-binary-csv", ["score", "{d}/binary.csv", LAB]),
    ("score-image-as-csv", ["score", IMG, LAB]),
    ("score-pixel-size-zero", SCORE + ["--pixel-size-A", "0"]),
    ("score-pixel-size-nan", SCORE + ["--pixel-size-A", "nan"]),
    ("score-pixel-size-inf", SCORE + ["--pixel-size-A", "inf"]),
    ("score-max-distance-px-zero", SCORE + ["--max-distance-px", "0"]),
    ("score-max-distance-px-nan", SCORE + ["--max-distance-px", "nan"]),
    ("score-max-distance-px-inf", SCORE + ["--max-distance-px", "inf"]),
    ("score-max-distance-A-negative", SCORE + ["--max-distance-A", "-1"]),
    ("score-max-distance-A-nan", SCORE + ["--max-distance-A", "nan"]),
    # refine
    ("refine-image-is-directory", ["refine", "{d}/folder.tif", LAB, "--out", "{d}/r.csv"]),
    ("refine-labels-is-directory", ["refine", IMG, "{d}/folder.csv", "--out", "{d}/r.csv"]),
    ("refine-labels-missing", ["refine", IMG, "{d}/missing.csv", "--out", "{d}/r.csv"]),
    ("refine-labels-empty", ["refine", IMG, "{d}/empty.csv", "--out", "{d}/r.csv"]),
    ("refine-labels-huge-field", ["refine", IMG, "{d}/huge_field.csv", "--out", "{d}/r.csv"]),
    ("refine-out-is-directory", ["refine", IMG, LAB, "--out", "{d}/out_dir"]),
    ("refine-out-under-a-file", ["refine", IMG, LAB, "--out", "{d}/a_file/r.csv"]),
    ("refine-garbage-image", ["refine", "{d}/garbage.tif", LAB, "--out", "{d}/r.csv"]),
    # simulate
    ("simulate-out-image-is-directory", ["simulate", "srtio3_100", "--out-image", "{d}/out_dir", "--out-labels",
                                         "{d}/s.csv", "--size", "48"]),
    ("simulate-out-labels-is-directory", ["simulate", "srtio3_100", "--out-image", "{d}/s.tif", "--out-labels",
                                          "{d}/out_dir", "--size", "48"]),
    ("simulate-out-under-a-file", ["simulate", "srtio3_100", "--out-image", "{d}/a_file/s.tif", "--out-labels",
                                   "{d}/s.csv", "--size", "48"]),
    ("simulate-size-zero", SIM[:-1] + ["0"]),
    ("simulate-size-negative", SIM[:-1] + ["-5"]),
    ("simulate-size-three", SIM + ["48", "48"]),
    ("simulate-size-huge", SIM[:-1] + ["1000000000"]),
    ("simulate-pixel-size-zero", SIM + ["--pixel-size-pm", "0"]),
    ("simulate-pixel-size-inf", SIM + ["--pixel-size-pm", "inf"]),
    ("simulate-pixel-size-nan", SIM + ["--pixel-size-pm", "nan"]),
    ("simulate-resolution-negative", SIM + ["--resolution-pm", "-10"]),
    ("simulate-dose-negative", SIM + ["--dose-e-per-A2", "-1"]),
    ("simulate-vacancy-above-one", SIM + ["--vacancy-fraction", "2"]),
    ("simulate-seed-negative", SIM + ["--seed", "-1"]),
    ("simulate-bad-mode", SIM + ["--mode", "nope"]),
    ("simulate-bad-boundary", SIM + ["--boundary", "nope"]),
    ("simulate-bad-boundary-crystal", SIM + ["--boundary", "tilt", "--boundary-crystal", "nope"]),
    ("simulate-unknown-species", SIM + ["--species", "Xx"]),
    ("simulate-kernel-knob-without-kernels", SIM + ["--kv", "300"]),
    ("simulate-kernels-bad-detector", SIM + ["--kernels", "dpc"]),
    ("simulate-kernels-kv-not-in-library", SIM + ["--kernels", "haadf", "--kv", "120"]),
    ("simulate-kernels-unvalidated-detector", SIM + ["--kernels", "bf", "--convergence-mrad", "30"]),
    ("simulate-kernels-with-z-exponent", SIM + ["--kernels", "haadf", "--z-exponent", "1.5"]),
    ("simulate-kernels-library-missing", SIM + ["--kernels", "haadf", "--kernel-library", "{d}/missing.npz"]),
    ("simulate-kernels-library-not-npz", SIM + ["--kernels", "haadf", "--kernel-library", "{d}/not_a_checkpoint.pt"]),
    # train
    ("train-unknown-arch", ["train", "nope", "--quick", "--out", "{d}/t.pt", "--device", "cpu"]),
    ("train-unknown-device", ["train", "atombench_unet", "--quick", "--out", "{d}/t.pt", "--device", "tpu"]),
    ("train-steps-zero", TRAIN + ["--steps", "0"]),
    ("train-batch-size-zero", TRAIN + ["--batch-size", "0"]),
    ("train-lr-nan", TRAIN + ["--lr", "nan"]),
    ("train-lr-negative", TRAIN + ["--lr", "-1"]),
    ("train-crop-zero", ["train", "atombench_unet", "--out", "{d}/t.pt", "--device", "cpu", "--crop", "0"]),
    ("train-threads-zero", TRAIN + ["--threads", "0"]),
    ("train-max-minutes-nan", TRAIN + ["--max-minutes", "nan"]),
    ("train-native-pixel-size-zero", TRAIN + ["--native-pixel-size", "0", "0"]),
    ("train-native-pixel-size-reversed", TRAIN + ["--native-pixel-size", "0.3", "0.1"]),
    ("train-resolution-nan", TRAIN + ["--resolution-pm", "nan", "100"]),
    ("train-normalize-window-zero", TRAIN + ["--normalize-window", "0"]),
    ("train-resume-not-checkpoint", TRAIN + ["--resume", "{d}/not_a_checkpoint.pt"]),
    ("train-resume-malicious", TRAIN + ["--resume", "{d}/malicious.pt"]),
    ("train-resume-missing", TRAIN + ["--resume", "{d}/missing.pt"]),
    ("train-resume-directory", TRAIN + ["--resume", "{d}/folder"]),
    ("train-out-is-directory", ["train", "atombench_unet", "--quick", "--out", "{d}/out_dir", "--device", "cpu"]),
    ("train-base-channels-zero", TRAIN + ["--base-channels", "0"]),
    ("train-init-not-weights", TRAIN + ["--init-weights", "{d}/not_a_checkpoint.pt"]),
    ("train-init-missing", TRAIN + ["--init-weights", "{d}/missing.pt"]),
    ("train-init-malicious", TRAIN + ["--init-weights", "{d}/malicious.pt"]),
    ("train-init-wrong-shape", TRAIN + ["--init-weights", "{d}/narrow_state.pt"]),
    ("train-share-without-modalities", TRAIN + ["--modality-share", "thick_support=0.2"]),
    ("train-share-unknown-kind", TRAIN + ["--modalities", "--modality-share", "cryo=0.2"]),
    ("train-share-not-a-number", TRAIN + ["--modalities", "--modality-share", "thick_support=lots"]),
    ("train-share-too-large", TRAIN + ["--modalities", "--modality-share", "thick_support=0.9"]),
    ("train-polarity-negatives-above-one", TRAIN + ["--polarity-negatives", "1.5"]),
    ("train-broad-thick-probes-without-modalities", TRAIN + ["--broad-thick-probes"]),
    ("train-init-and-resume", TRAIN + ["--init-weights", "{d}/narrow_state.pt", "--resume", "{d}/narrow_state.pt"]),
    # benchmark
    ("benchmark-missing-dataset", ["benchmark", "{d}/missing_ds", "--model", "atombench", "--out", "{d}/b.csv"]),
    ("benchmark-folder-without-cases", ["benchmark", "{d}/ds_no_cases", "--model", "atombench", "--out", "{d}/b.csv"]),
    ("benchmark-corrupt-h5", ["benchmark", "{d}/corrupt.h5", "--model", "atombench", "--out", "{d}/b.csv"]),
    ("benchmark-empty-h5", ["benchmark", "{d}/empty.h5", "--model", "atombench", "--out", "{d}/b.csv"]),
    ("benchmark-h5-is-directory", ["benchmark", "{d}/folder", "--model", "atombench", "--out", "{d}/b.csv"]),
    ("benchmark-unknown-model", BENCH[:3] + ["nope"] + BENCH[4:]),
    ("benchmark-every-run-fails", ["benchmark", "{d}/ds_bad_images", "--model", "atombench", "--out",
                                   "{d}/b.csv", "--no-progress", "--scheduler", "sync"]),
    ("benchmark-out-is-directory", BENCH[:4] + ["--out", "{d}/out_dir"] + BENCH[6:]),
    ("benchmark-summary-is-directory", BENCH + ["--summary", "{d}/out_dir"]),
    ("benchmark-border-nan", BENCH + ["--border-margin-px", "nan"]),
    ("benchmark-border-negative", BENCH + ["--border-margin-px", "-1"]),
    ("benchmark-workers-zero", BENCH + ["--workers", "0"]),
    ("benchmark-unknown-device", BENCH + ["--device", "tpu"]),
    ("benchmark-unknown-scheduler", BENCH[:-2] + ["--scheduler", "nope"]),
    ("benchmark-no-case-matches", BENCH + ["--case", "nope"]),
    # robustness
    ("robustness-points-one", ROB[:-1] + ["1"]),
    ("robustness-points-zero", ROB[:-1] + ["0"]),
    ("robustness-unknown-knob", ROB[:-4] + ["--knob", "nope", "--points", "2"]),
    ("robustness-bad-knob-range", ROB[:-4] + ["--knob", "dose_e_per_A2=a:b", "--points", "2"]),
    ("robustness-knob-range-nan", ROB[:-4] + ["--knob", "dose_e_per_A2=nan:1e4", "--points", "2"]),
    ("robustness-knob-three-values", ROB[:-4] + ["--knob", "dose_e_per_A2=1:2:3", "--points", "2"]),
    ("robustness-unknown-model", ROB[:2] + ["nope"] + ROB[3:]),
    ("robustness-out-is-file", ROB[:4] + ["{d}/a_file"] + ROB[5:]),
    ("robustness-border-nan", ROB + ["--border-margin-px", "nan"]),
    ("robustness-unknown-device", ROB + ["--device", "tpu"]),
]


def expand(argv: list[str], d: Path) -> list[str]:
    return [a.replace("{d}", str(d)) for a in argv]
