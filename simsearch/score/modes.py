"""Scoring modes: how an image's embeddings and the index become an anomaly score (higher = more
anomalous, PyOD's sign), and what a mode keeps of its exemplars. A mode is one class and one registry entry
(`@register_scoring_mode`, from any module); the index records its name and holds the stores it declares.

Both built-in modes are defect-aware: the distance to the good exemplars is the score, raised where the
image lies nearer to a known defect than to anything good (`defect_aware`, on image vectors, and in the patch
mode on each patch too). An index without
defect exemplars scores exactly as plain kNN; adding or removing a defect changes the next scores at once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import numpy as np

from simsearch.embed.base import Embeddings
from simsearch.embed.compiled import describe_copy
from simsearch.errors import IndexProblem, InputError, UnknownComponentError
from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.index.roles import Role, register_keeper
from simsearch.score.banks import (
    PATCH_ROLES,
    REGION_ROLES,
    bank_patches,
    defect_coherence,
    has_defect_patches,
    largest_patch_distances,
    nearest_defect_patches,
    nearest_patches,
    nearest_regions,
    region_descriptors,
)
from simsearch.score.open_set import RESIDUAL_ROLES, defect_weight, evidence, log_ratio

RAISE_LEVEL = 0.5  # a patch's map is raised by a known defect patch where it is at least this share of the peak
CONTRAST_K = 3  # neighbours on each side: one odd exemplar should not decide (k=1 measured 0.907, 3 0.921, 5 0.916)

SCORING_MODES: dict[str, type["ScoringMode"]] = {}


def register_scoring_mode(cls: type["ScoringMode"]) -> type["ScoringMode"]:
    """Class decorator: make a scoring mode available by its `name`, to score and to keep its stores."""
    register_keeper(cls())
    SCORING_MODES[cls.name] = cls
    return cls


def get_scoring_mode(name: str) -> "ScoringMode":
    """The registered scoring mode called `name`."""
    if name not in SCORING_MODES:
        raise UnknownComponentError(f"unknown scoring mode {name!r}; known: {', '.join(sorted(SCORING_MODES))}",
                                    hint="choose one of them for {param}", parameter="mode")
    return SCORING_MODES[name]()


class ScoringMode(ABC):
    """Embeddings + index -> raw image scores (N,) and, where the mode has them, patch maps (N, h, w); and what
    the mode keeps of new exemplars in its own stores (`roles`, `bank`) beside the catalogue's image vectors."""

    name: str = ""
    needs_patches: bool = False  # the embedder must give patch vectors (the mode reads them, and gives maps)
    # the vector stores the mode keeps besides the catalogue's `good` and `defect` image vectors, by role name;
    # an index built for the mode holds them (`index.vectors[role]`), saves, loads, copies them and removes an
    # exemplar's vectors from them (by owner where `Role.per_patch`)
    roles: Mapping[str, Role] = {}

    def bank(self, index: ExemplarIndex, ids: np.ndarray, labels: Sequence[str], embeddings: Embeddings,  # noqa: B027 (optional hook)
             masks: Sequence[np.ndarray | None] | None) -> None:
        """What the mode keeps of exemplars just added to the index (catalogue and image vectors already in):
        their ids (N,), labels ("good"/"defect"), embeddings (image (N, D), patches (N, h, w, D) or None) and
        masks (an (h, w) boolean grid or None each, or None). It adds to its stores (`index.vectors[role]`;
        a store missing from an older index is skipped) and may set `index.artifacts[name]` (bytes, with a JSON
        record in `index.artifact_records[name]`). Raising undoes the whole add. None by default: nothing kept."""

    @abstractmethod
    def score(self, index: ExemplarIndex, embeddings: Embeddings, exclude: int | None = None,
              maps: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of a batch; with `exclude`, exemplar `exclude` is left out (leave-one-out). maps=False: no
        map is wanted, and the mode may skip the work only maps need (it then returns None for them); the
        scores are the same either way."""

    def describe(self, index: ExemplarIndex) -> dict[str, Any]:
        """The mode's own fields of the index's description (`simsearch info`, the service's /info): JSON
        values, each shown as one line of `info`."""
        return {}


def defect_aware(good_distance: np.ndarray, defect_distance: np.ndarray | None) -> np.ndarray:
    """d_good * (1 + max(0, ln(d_good / d_defect))): unchanged where the nearest defect is farther than the
    nearest good exemplar, raised with how much nearer it is (a part that looks like a known defect)."""
    if defect_distance is None:
        return good_distance
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.maximum(good_distance, 1e-12) / np.maximum(defect_distance, 1e-12))
    return good_distance * (1.0 + np.maximum(ratio, 0.0))


def defect_factor(good_distance: np.ndarray, defect_distance: np.ndarray) -> np.ndarray:
    """The factor `defect_aware` multiplies a good distance by (1 where no defect is nearer)."""
    return defect_aware(good_distance, defect_distance) / np.maximum(good_distance, 1e-12)


@register_scoring_mode
class ImageMode(ScoringMode):
    """Mean distance of the image vector to its k nearest good exemplars."""

    name = "image"

    def score(self, index, embeddings, exclude=None, maps=True):
        distances, _ = index.nearest_good(embeddings.image, index.k, exclude=exclude)
        defect = index.nearest_defect(embeddings.image, 1)[0][:, 0] if len(index.defect) else None
        return defect_aware(distances.mean(axis=1), defect), None


@register_scoring_mode
class PatchMode(ScoringMode):
    """PatchCore: the image score is the largest of its patches' distances to the nearest good patches; with
    defect exemplars, the image vector's resemblance to a known defect raises it (and the map) by one factor.
    The map also raises (`defect_aware`, per patch) the patches nearer to a known defect patch than to any good
    one, so maps, boxes and the predicted type point at defect-like regions. The per-patch raise stays out of
    the image score: on ELPV (3 folds, 128 px, coreset bank) it cost 2.4 points of image AUROC (0.870 against
    0.894; benchmarks/defect_patch_scoring.py, docs/metric_learning.md)."""

    name = "patch"
    needs_patches = True
    roles = PATCH_ROLES

    def bank(self, index, ids, labels, embeddings, masks):
        bank_patches(index, ids, labels, embeddings, masks)

    def score(self, index, embeddings, exclude=None, maps=True):
        scores, patch_maps, _ = self.patch_scores(index, embeddings, exclude, maps)
        if not len(index.defect):
            return scores, patch_maps
        good = index.nearest_good(embeddings.image, 1, exclude=exclude)[0][:, 0]
        factor = defect_factor(good, index.nearest_defect(embeddings.image, 1)[0][:, 0])
        return scores * factor, None if patch_maps is None else patch_maps * factor[:, None, None]

    @staticmethod
    def patch_scores(index: ExemplarIndex, embeddings: Embeddings, exclude: int | None = None,
                     maps: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Image scores (the largest patch distance), maps raised where patches look like a known defect
        patch, and the plain distances to the good patches (N, h, w). maps=False, where the maps would be
        the plain distances (no defect patches, k = 1): the scores alone (maps and distances None), from a
        search that finds only each image's largest nearest distance."""
        if embeddings.patches is None:
            raise InputError("patch mode needs patch vectors, and this embedder gives none",
                             hint="use the image mode for {param}", parameter="mode")
        defect_patches = has_defect_patches(index)
        if not maps and exclude is None and index.k == 1 and not defect_patches:
            return largest_patch_distances(index, embeddings.patches), None, None
        distances, _ = nearest_patches(index, embeddings.patches, index.k, exclude=exclude)
        scores, maps = distances.reshape(len(distances), -1).max(axis=1), distances
        if defect_patches:
            # patch level: maps and boxes point at the regions that look like a known defect, among those the
            # good-only map already marks (its upper half); never above the image's score, so a known defect
            # cannot saturate the map and draw a box over the whole frame
            raised = defect_aware(distances, nearest_defect_patches(index, embeddings.patches, exclude=exclude)[0])
            marked = distances >= RAISE_LEVEL * scores[:, None, None]
            maps = np.minimum(np.where(marked, raised, distances), scores[:, None, None])
        return scores, maps, distances


@register_scoring_mode
class ContrastMode(PatchMode):
    """Patch mode whose image score weighs how much more the image resembles the known defects than the known
    goods: the good-patch maximum times d_good / d_defect, the mean distances of the image vector to its k
    nearest good and defect exemplars (k = CONTRAST_K, fewer where fewer exist). Unlike the patch mode it also
    lowers parts unlike every known defect, which tells an unusual good part from a defect; that needs known
    defects that resemble each other, so the factor is mixed with the patch mode's by the index's
    `defect_coherence`
    (0 with one defect or scattered ones: the patch mode exactly; on ELPV ~0.66 with all 233 training defects).
    Where the index keeps region descriptors (its own stores: `region_descriptors`, the mean of the patches
    least like the good bank), the ratio is the geometric mean of the whole image's and the region's: a defect
    is local, and averaged over the whole image it drowns in the good rest.
    ELPV learning curve (`compare --curve`, docs/compare.md), image AUROC with 1 / 3 / 10 / ~53 defects: patch
    mode 0.865 / 0.864 / 0.866 / 0.877, the unmixed ratio 0.853 / 0.853 / 0.861 / 0.890, mixed 0.865 / 0.865 /
    0.872 / 0.889, mixed with the region ratio 0.865 / 0.867 / 0.881 / 0.890. With no defect exemplars it
    scores exactly as the patch mode."""

    name = "contrast"
    needs_patches = True
    roles = {**PATCH_ROLES, **REGION_ROLES}

    def score(self, index, embeddings, exclude=None, maps=True):
        # with defects, the region ratio reads every patch's distance: maps cost nothing more then
        scores, patch_maps, distances = self.patch_scores(index, embeddings, exclude, maps or bool(len(index.defect)))
        if not len(index.defect):
            return scores, patch_maps
        k = max(1, min(CONTRAST_K, len(index.defect), len(index.good) - (exclude is not None)))
        good = index.nearest_good(embeddings.image, k, exclude=exclude)[0]
        defect = index.nearest_defect(embeddings.image, k)[0]
        ratio = good.mean(axis=1) / np.maximum(defect.mean(axis=1), 1e-12)
        regions = nearest_regions(index, embeddings.patches, distances, k, exclude=exclude)
        if regions is not None:  # the geometric mean of the whole image's ratio and its region's
            ratio = np.sqrt(ratio * regions[0].mean(axis=1) / np.maximum(regions[1].mean(axis=1), 1e-12))
        raise_only = defect_factor(good[:, 0], defect[:, 0])  # the patch mode's
        weight = defect_coherence(index)
        factor = weight * ratio + (1.0 - weight) * raise_only
        return scores * factor, patch_maps * factor[:, None, None]

    def describe(self, index):
        return {"defect_coherence": round(defect_coherence(index), 4)}  # how far it trusts d_good / d_defect


@register_scoring_mode
class OpenSetMode(PatchMode):
    """Few labelled defects on parts nobody tuned for (`simsearch.score.open_set`): the good-only patch
    residual times (d_good / d_defect) ** w, with w chosen out of fold on the index's own exemplars, and w = 0
    (the residual, bit for bit as the patch mode without defects) where the labels do not help. Its maps are
    the residual's: a known defect never saturates them, and they point where the good-only map points."""

    name = "open-set"
    needs_patches = True
    roles = {"patches": PATCH_ROLES["patches"], **REGION_ROLES, **RESIDUAL_ROLES}

    def bank(self, index, ids, labels, embeddings, masks):
        measured = bank_patches(index, ids, labels, embeddings, masks)
        if measured is None:
            return
        flat = measured.reshape(len(ids), -1)
        residuals = np.where(np.isnan(flat), -np.inf, flat).max(axis=1)  # -inf: not measured (no bank yet)
        for label in ("good", "defect"):
            rows = np.flatnonzero([(lab == label) and np.isfinite(r) for lab, r in zip(labels, residuals)])
            if len(rows):
                index.vectors[f"{label}_residuals"].add(residuals[rows, None].astype(np.float32), ids[rows])

    def score(self, index, embeddings, exclude=None, maps=True):
        choice = defect_weight(index)
        if not choice.uses_labels:
            scores, patch_maps, _ = self.patch_scores(index, embeddings, exclude, maps)
            return scores, patch_maps
        # every patch's distance only where the region ratio reads it (or maps are wanted)
        scores, patch_maps, distances = self.patch_scores(index, embeddings, exclude, maps or bool(choice.weight))
        ratios = log_ratio(index, embeddings.image, region_descriptors(embeddings.patches, distances), exclude) \
            if choice.weight else None
        return scores * np.exp(evidence(choice, ratios, embeddings.image)), patch_maps if maps else None

    def describe(self, index):
        return {"defect_weight": defect_weight(index).to_dict()}


def default_mode(defects: int) -> tuple[str, str]:
    """The scoring mode a new index gets when none is named, and why: the open-set mode where labelled defects
    are given (it weighs them only where they help out of fold, else scores as the patch mode), the patch mode
    otherwise. Chosen on the mean over the dev sets (docs/few_labels.md), not on one."""
    if defects:
        return "open-set", (f"{defects} labelled defect(s) given: the good-only patch residual, weighed by "
                            "resemblance to them where they help out of fold (see `info`)")
    return "patch", "no labelled defects: the good-only patch residual (PatchCore-style)"


def anomaly_scores(index: ExemplarIndex, embeddings: Embeddings, exclude: int | None = None,
                   maps: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw image scores (N,) and patch maps (N, h, w) or None (also where maps=False let the mode skip them),
    by the index's scoring mode."""
    if len(index.good) == 0:
        raise IndexProblem("the index holds no good exemplars to score against", hint="add good exemplars first")
    return get_scoring_mode(index.mode).score(index, embeddings, exclude, maps)


def describe_index(index: ExemplarIndex) -> dict[str, Any]:
    """What an index holds and how it scores: the one description behind `simsearch info`, the service's /info
    and the report's set-up (the store's, its compiled embedder copy's, and its scoring mode's own fields)."""
    copy = describe_copy(index.artifacts, index.artifact_records, index.fingerprint)
    described = {**index.describe(), "compiled_embedder": copy}
    if index.mode in SCORING_MODES:
        described.update(get_scoring_mode(index.mode).describe(index))
    return described
