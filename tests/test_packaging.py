"""The sample data lives once, in sample_data/, and a wheel installs it where the package finds it."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from napari_atombench.core.dataset import load_case
from napari_atombench.sample_data import CATALOGUE, SAMPLE_DIR, sample_dataset, sample_paths

ROOT = Path(__file__).resolve().parents[1]


def test_sample_data_is_a_folder_dataset_read_in_place():
    assert SAMPLE_DIR == ROOT / "sample_data"
    dataset = sample_dataset()
    assert [c.case for c in dataset] == list(CATALOGUE)
    for case in dataset:
        image, labels = sample_paths(case.case)
        assert (case.image_path, case.labels_path) == (str(image), str(labels))
        assert case.pixel_size_A > 0 and case.source and case.licence
        data = load_case(case)
        assert data.image.ndim == 2 and len(data.truth_rc) > 50
    # one copy: no sample file inside the package folder of the source tree
    assert not list((ROOT / "napari_atombench" / "sample_data").glob("*.tif"))


def test_packages_listed_in_pyproject_match_the_source_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "napari_atombench").rglob("__init__.py")}
    in_tree.add("napari_atombench.models.weights")  # data only
    mapped = set(config["package-dir"])
    assert set(config["packages"]) == in_tree | mapped
    assert config["package-dir"]["napari_atombench.sample_data.files"] == "sample_data"


_CHECK = """
import sys
from pathlib import Path
import napari_atombench.sample_data as s
from napari_atombench._napari.sample_data import load_sample
assert Path(s.__file__).is_relative_to(Path(sys.argv[1])), s.__file__
assert s.SAMPLE_DIR == Path(sys.argv[1]) / "napari_atombench" / "sample_data" / "files", s.SAMPLE_DIR
for name in s.CATALOGUE:
    layers = load_sample(name)
    assert layers[0][0].shape == (256, 256) and len(layers[1][0]) > 50
print(len(s.sample_dataset()))
"""


@pytest.mark.slow
def test_wheel_carries_the_samples_and_the_installed_package_reads_them(tmp_path):
    # build from a clean copy of the tracked tree: a stale build/ folder cannot leak into the wheel
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    source = tmp_path / "src"
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("napari_atombench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    expected = {f"napari_atombench/sample_data/files/{f}" for f in ["cases.csv", *[n for v in CATALOGUE.values() for n in v[:2]]]}
    assert expected <= set(names)
    # each sample file once, and no copy of the repository's top-level folder
    assert sum(n.endswith(".tif") for n in names) == len(CATALOGUE)
    assert not any(n.startswith("sample_data/") for n in names)
    assert "napari_atombench/napari.yaml" in names
    # the installed layout, imported with the source tree out of reach
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run = subprocess.run([sys.executable, "-c", _CHECK, str(site)], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(len(CATALOGUE))
