"""Roles of an index's vector stores (what their ids mean), and the registry of what each scoring mode keeps
(`StoreKeeper`: simsearch.score.modes registers every ScoringMode here; the index looks its mode up by name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from simsearch.embed.base import Embeddings
from simsearch.errors import InputError, UnknownComponentError

if TYPE_CHECKING:
    from simsearch.index.exemplar_index import ExemplarIndex

PATCH_ID_BITS = 24  # a patch's FAISS id is (exemplar id << 24) | its position in the exemplar's grid
ID_LIMIT = 1 << (63 - PATCH_ID_BITS)  # exemplar ids stay below it, so that patch ids fit FAISS's int64
_NAME = re.compile(r"^[a-z][a-z_]*$")  # a role or artifact name: it names a generation file too


@dataclass(frozen=True)
class Role:
    """What the ids of a vector store mean: its vectors belong to exemplars labelled `label`; `per_patch`: each id
    is (exemplar id << PATCH_ID_BITS) | a position in the exemplar's patch grid, so one exemplar owns many.
    `dim`: its vectors' size where it is not the index's (a mode's own projection)."""

    label: str = "good"
    per_patch: bool = False
    dim: int | None = None

    def owners(self, ids: np.ndarray) -> np.ndarray:
        """The exemplar ids of stored ids (-1 stays -1: no neighbour found)."""
        return np.where(ids >= 0, ids >> PATCH_ID_BITS, -1) if self.per_patch else ids

    def id_range(self, exemplar_id: int) -> tuple[int, int]:
        """[low, high) of the ids exemplar `exemplar_id` owns in such a store."""
        if self.per_patch:
            return exemplar_id << PATCH_ID_BITS, (exemplar_id + 1) << PATCH_ID_BITS
        return exemplar_id, exemplar_id + 1

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "per_patch": self.per_patch, **({"dim": self.dim} if self.dim else {})}


CATALOGUE_ROLES = {"good": Role("good"), "defect": Role("defect")}  # every exemplar's image vector, by label


class StoreKeeper(Protocol):
    """What a scoring mode keeps (simsearch.score.modes.ScoringMode is one): the stores it declares, and
    what it puts in them (and in `artifacts`) of exemplars just added to the catalogue."""

    name: str
    roles: Mapping[str, Role]

    def bank(self, index: "ExemplarIndex", ids: np.ndarray, labels: Sequence[str], embeddings: Embeddings,
             masks: Sequence[np.ndarray | None] | None) -> None: ...


KEEPERS: dict[str, StoreKeeper] = {}  # by mode name; filled by simsearch.score.modes.register_scoring_mode


def register_keeper(keeper: StoreKeeper) -> StoreKeeper:
    for role in keeper.roles:
        check_name(role, "role")
    KEEPERS[keeper.name] = keeper
    return keeper


def keeper_of(mode: str) -> StoreKeeper:
    if mode not in KEEPERS:
        raise UnknownComponentError(f"unknown scoring mode {mode!r}; known: {', '.join(sorted(KEEPERS)) or 'none'}",
                                    hint="import the module that registers it (the built-in ones: "
                                         "simsearch.score.modes) or choose another for {param}", parameter="mode")
    return KEEPERS[mode]


def check_name(name: str, what: str) -> str:
    """A role or artifact name: a lower-case word that is not the catalogue's or the manifest's."""
    if not isinstance(name, str) or not _NAME.match(name) or name in ("catalogue", "manifest"):
        raise InputError(f"{what} name {name!r} is not a lower-case word (a-z, _) other than catalogue")
    return name
