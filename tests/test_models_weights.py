"""Every weights file is checked against its pinned hash before use; a corrupt or
wrong-architecture file is reported in one line that says which file, what is wrong
and how to fix it."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_atombench.models import registry  # noqa: E402
from napari_atombench.models.registry import (  # noqa: E402
    REGISTRY,
    CorruptWeightsError,
    UrlWeights,
    get_locator,
    get_spec,
    list_models,
    sha256_of,
)


def _flip_bytes(path, count: int = 64) -> None:
    """Flip the exponent bits of ``count`` bytes in the middle of the file (tensor data)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.fixture
def packaged_copy(tmp_path, monkeypatch):
    """The shipped weights copied to tmp_path, which the registry then ships from."""
    for path in registry.PACKAGED_WEIGHTS_DIR.glob("*.pt"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(registry, "PACKAGED_WEIGHTS_DIR", tmp_path)
    return tmp_path


def test_intact_packaged_weights_load_and_are_listed_as_cached(packaged_copy):
    loc = get_locator("atombench", device="cpu")
    assert loc.inner.provenance["weights_path"] == str(packaged_copy / "atombench.pt")
    assert {r["name"]: r["cached"] for r in list_models()}["atombench"] is True


@pytest.mark.parametrize("name", ["atombench", "atomnet-sim", "atomsegnet-sim"])
def test_corrupt_packaged_weights_are_refused_with_the_fix(packaged_copy, name):
    path = packaged_copy / get_spec(name).weights.filename
    _flip_bytes(path)
    with pytest.raises(CorruptWeightsError) as info:
        get_locator(name, device="cpu")
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and get_spec(name).weights.sha256 in msg and sha256_of(path) in msg
    assert "reinstall napari-atombench" in msg
    assert {r["name"]: r["cached"] for r in list_models()}[name] is False


def test_corrupt_cached_download_is_refused_and_not_listed_as_cached(tmp_path, monkeypatch):
    source = get_spec("atomnet-sim").weights.path
    spec = dataclasses.replace(
        get_spec("atomnet-sim"), name="test-downloaded",
        weights=UrlWeights(url="https://example.invalid/w.pt", filename="w.pt", sha256=sha256_of(source)),
    )
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    monkeypatch.setenv("ATOMBENCH_NO_DOWNLOAD", "1")
    monkeypatch.delenv("ATOMBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(registry, "cache_dir", lambda: tmp_path)
    shutil.copy(source, tmp_path / "w.pt")
    assert {r["name"]: r["cached"] for r in list_models()}[spec.name] is True
    get_locator(spec.name, device="cpu")
    _flip_bytes(tmp_path / "w.pt")
    assert {r["name"]: r["cached"] for r in list_models()}[spec.name] is False
    with pytest.raises(CorruptWeightsError, match=r"w\.pt is corrupt.*delete .*w\.pt so that it is downloaded again"):
        get_locator(spec.name, device="cpu")


def test_corrupt_weights_never_give_silent_results(packaged_copy):
    """The reported failure: flipped exponent bits gave '0 positions' and exit 0."""
    _flip_bytes(packaged_copy / "atombench.pt")
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    with pytest.raises(CorruptWeightsError):
        get_locator("atombench", device="cpu").locate(image, 0.2)


@pytest.mark.parametrize(("name", "other"), [("atombench", "atomnet-sim"), ("atomnet-sim", "atombench"),
                                             ("atomsegnet-sim", "atomnet-sim")])
def test_wrong_architecture_names_model_file_and_keys(name, other):
    wrong = get_spec(other).weights.path
    with pytest.raises(ValueError) as info:
        get_locator(name, weights=wrong, device="cpu")
    msg = str(info.value)
    assert "\n" not in msg and f"'{name}'" in msg and str(wrong) in msg
    assert "missing keys: " in msg or "no key enc.0.0.weight" in msg
    if name != "atombench":  # ours infers its size from the keys, so it names the key it needs
        assert "unexpected keys: " in msg and "(+" in msg  # the first few, then a count
