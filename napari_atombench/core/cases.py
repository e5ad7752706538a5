"""Benchmark cases and datasets: where a case's image and labels are, and a named list of cases.

See :mod:`napari_atombench.core.dataset` for the sources. This module imports
neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

__all__ = ["CASE_COLUMNS", "Case", "CaseData", "Dataset"]

#: Columns of ``cases.csv``; the first four are required.
CASE_COLUMNS = ("case", "image", "labels", "pixel_size_A", "material", "zone_axis", "modality", "kind", "source", "licence")
_REQUIRED = CASE_COLUMNS[:4]
_TEXT_FIELDS = ("material", "zone_axis", "modality", "kind", "source", "licence")


@dataclass
class Case:
    """One benchmark case: where its image and labels are, and what it shows.

    Exactly one source is set: ``image_path``/``labels_path`` (folder dataset),
    ``h5_path``/``h5_key`` (``wei_atom.h5``) or ``image``/``truth_rc``
    (in memory, e.g. a simulated series).

    Attributes
    ----------
    case : str
        Unique name.
    pixel_size_A : float or None
    kind, material, zone_axis, modality, source, licence : str
    extra : dict
        Every other column / metadata entry (e.g. ``dose_e_per_A2``,
        ``knob``, ``value``).
    """

    case: str
    pixel_size_A: float | None = None
    kind: str = ""
    material: str = ""
    zone_axis: str = ""
    modality: str = ""
    source: str = ""
    licence: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    image_path: str | None = None
    labels_path: str | None = None
    h5_path: str | None = None
    h5_key: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    truth_rc: np.ndarray | None = field(default=None, repr=False)
    raw: np.ndarray | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        """The case-table row (no arrays)."""
        out = {"case": self.case, "pixel_size_A": self.pixel_size_A}
        out.update({name: getattr(self, name) for name in _TEXT_FIELDS})
        out.update(self.extra)
        return out


@dataclass
class CaseData:
    """A loaded case: the model input, the labels and the raw image (for contrast)."""

    image: np.ndarray
    truth_rc: np.ndarray
    raw: np.ndarray | None
    pixel_size_A: float | None


@dataclass
class Dataset:
    """A named list of cases.

    Attributes
    ----------
    name : str
    cases : list of Case
    root : str or None
        Folder or file the cases came from.
    """

    name: str
    cases: list[Case]
    root: str | None = None

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, name: str) -> Case:
        for case in self.cases:
            if case.case == name:
                return case
        raise KeyError(f"no case {name!r} in {self.name}; cases: {', '.join(c.case for c in self.cases[:10])}")

    def table(self) -> pd.DataFrame:
        """One row per case: name, pixel size, kind, material, ... and extras."""
        return pd.DataFrame([c.row() for c in self.cases])

    def filter(
        self,
        *,
        kind: str | Sequence[str] | None = None,
        material: str | None = None,
        cases: Iterable[str] | None = None,
    ) -> "Dataset":
        """A subset: kinds (exact, case-insensitive), material (substring, case-insensitive), names."""
        selected = list(self.cases)
        if kind is not None:
            kinds = {kind.lower()} if isinstance(kind, str) else {k.lower() for k in kind}
            selected = [c for c in selected if c.kind.lower() in kinds]
        if material is not None:
            selected = [c for c in selected if material.lower() in c.material.lower()]
        if cases is not None:
            wanted = list(cases)
            known = {c.case for c in selected}
            missing = [w for w in wanted if w not in known]
            if missing:
                raise KeyError(f"unknown case(s) in {self.name}: {', '.join(missing)}")
            selected = [c for c in selected if c.case in set(wanted)]
        return replace(self, cases=selected)


