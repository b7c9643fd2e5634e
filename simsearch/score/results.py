"""What simsearch says of an image (ScoreResult, Neighbour, Box), and how a batch of embeddings becomes results:
the scoring mode's score plus the nearest good and defect exemplars that explain it. Higher = more anomalous."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsearch.embed.base import Embeddings
from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.score.banks import has_defect_patches, nearest_defect_patches, nearest_patches
from simsearch.score.modes import anomaly_scores


@dataclass
class Neighbour:
    """An exemplar near a scored image, at an image-vector distance."""

    id: int
    path: str
    label: str
    defect_type: str | None
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "label": self.label, "type": self.defect_type,
                "distance": round(float(self.distance), 6)}


@dataclass
class Box:
    """A region of the anomaly map above the threshold, in original image pixels (x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float

    def scaled(self, scale_y: float, scale_x: float, height: int, width: int) -> "Box":
        """The box in a frame scale_y, scale_x times larger (an image reduced on decode), clipped to it."""
        return Box(int(self.x0 * scale_x), int(self.y0 * scale_y), min(width, int(np.ceil(self.x1 * scale_x))),
                   min(height, int(np.ceil(self.y1 * scale_y))), self.score)

    def to_dict(self) -> dict[str, Any]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1, "score": round(float(self.score), 6)}


@dataclass
class ScoreResult:
    """What simsearch says of one image."""

    path: str | None
    score: float
    nearest: list[Neighbour]
    nearest_defect: Neighbour | None = None
    normalised_score: float | None = None
    is_anomaly: bool | None = None
    patch_map: np.ndarray | None = field(default=None, repr=False)  # (h, w) patch distances, patch mode
    image_size: tuple[int, int] | None = None  # (height, width) of the original image
    boxes: list[Box] = field(default_factory=list)
    predicted_type: str | None = None  # the known defect it resembles more than anything good, if any
    type_evidence: dict[str, Any] | None = None  # why: the nearest defect exemplars (ids, distances) and more
    map_from_patches: bool = field(default=False, repr=False)  # the anomaly map is patch_map smoothed (kNN)
    _anomaly_map: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def anomaly_map(self) -> np.ndarray | None:
        """The anomaly map; for kNN results patch_map smoothed (see simsearch.score.maps), computed when first
        read: scoring pays for it only where boxes, a report or an evaluation use it."""
        if self._anomaly_map is None and self.map_from_patches and self.patch_map is not None:
            from simsearch.score.maps import anomaly_map  # maps builds on this module's Box

            self._anomaly_map = anomaly_map(self.patch_map)
        return self._anomaly_map

    @anomaly_map.setter
    def anomaly_map(self, value: np.ndarray | None) -> None:
        self._anomaly_map = value

    def to_dict(self, exact: bool = False) -> dict[str, Any]:
        """The result as JSON values: a non-finite number (a search that found fewer neighbours than asked) is
        null, never `Infinity`, which JSON does not have. `exact`: the score and normalised score unrounded (a
        result crossing to another process, rebuilt there by `from_dict`)."""
        def value(number: float) -> float:
            return float(number) if exact else round(float(number), 6)

        return finite_json({
            "path": self.path, "score": value(self.score),
            "normalised_score": None if self.normalised_score is None else value(self.normalised_score),
            "is_anomaly": self.is_anomaly,
            "nearest": [n.to_dict() for n in self.nearest],
            "nearest_defect": self.nearest_defect.to_dict() if self.nearest_defect else None,
            "boxes": [b.to_dict() for b in self.boxes],
            "predicted_type": self.predicted_type,
            "type_evidence": self.type_evidence,
        })

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "ScoreResult":
        """The result `to_dict` gave (maps are not in it); a null distance or score (not finite) is infinite."""
        def number(value: Any) -> float:
            return float("inf") if value is None else float(value)

        def neighbour(item: dict[str, Any]) -> Neighbour:
            return Neighbour(item["id"], item["path"], item["label"], item["type"], number(item["distance"]))

        return cls(path=record["path"], score=number(record["score"]),
                   nearest=[neighbour(n) for n in record["nearest"]],
                   nearest_defect=neighbour(record["nearest_defect"]) if record["nearest_defect"] else None,
                   normalised_score=record["normalised_score"], is_anomaly=record["is_anomaly"],
                   boxes=[Box(**box) for box in record["boxes"]], predicted_type=record["predicted_type"],
                   type_evidence=record.get("type_evidence"))


def finite_json(value: Any) -> Any:
    """`value` (dicts, lists, numbers) with every non-finite float replaced by None (JSON null)."""
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _neighbours(index: ExemplarIndex, distances: np.ndarray, ids: np.ndarray) -> list[Neighbour]:
    found = []
    for distance, exemplar_id in zip(distances, ids):
        exemplar = index.exemplars.get(int(exemplar_id))
        if exemplar is not None:
            found.append(Neighbour(exemplar.id, exemplar.path, exemplar.label, exemplar.defect_type, float(distance)))
    return found


TYPE_NEIGHBOURS = 3  # defect exemplars listed as the evidence for a predicted type


def score_embeddings(index: ExemplarIndex, embeddings: Embeddings, paths: list[str | None] | None = None,
                     n_nearest: int = 3, maps: bool = True) -> list[ScoreResult]:
    """Score a batch: anomaly score, the n nearest good exemplars, the nearest defect exemplar, and the
    predicted defect type with its evidence; maps=False lets the scoring mode leave the patch maps out."""
    count = len(embeddings.image)
    paths = paths if paths is not None else [None] * count
    scores, maps = anomaly_scores(index, embeddings, maps=maps)
    good_distances, good_ids = index.nearest_good(embeddings.image, n_nearest)
    defect_distances, defect_ids = index.nearest_defect(embeddings.image, TYPE_NEIGHBOURS)
    peak = _peak_patch_evidence(index, embeddings, maps)
    results = []
    for row in range(count):
        defects = _neighbours(index, defect_distances[row], defect_ids[row])
        good = _neighbours(index, good_distances[row], good_ids[row])
        predicted, evidence = None, None
        if defects:
            evidence = {"level": "image", "defect_ids": [n.id for n in defects],
                        "defect_distances": [round(n.distance, 6) for n in defects],
                        "good_distance": round(good[0].distance, 6) if good else None}
            # the evidence for a type: the nearest defect exemplar is nearer than the nearest good one
            if not good or defects[0].distance < good[0].distance:
                predicted = defects[0].defect_type or "defect"
        if peak is not None and peak[row] is not None:
            # the map's peak patch lies nearer a known defect's patch than any good patch: its type wins
            owner, defect_distance, good_distance = peak[row]
            exemplar = index.exemplars.get(owner)
            if exemplar is not None and defect_distance < good_distance:
                predicted = exemplar.defect_type or "defect"
                evidence = {**(evidence or {}), "level": "patch", "patch_defect_id": owner,
                            "patch_defect_distance": round(defect_distance, 6),
                            "patch_good_distance": round(good_distance, 6)}
        results.append(ScoreResult(
            path=paths[row], score=float(scores[row]), nearest=good,
            nearest_defect=defects[0] if defects else None,
            patch_map=None if maps is None else maps[row], map_from_patches=maps is not None,
            predicted_type=predicted, type_evidence=evidence))
    return results


def _peak_patch_evidence(index: ExemplarIndex, embeddings: Embeddings,
                         maps: np.ndarray | None) -> list[tuple[int, float, float] | None] | None:
    """Per image, at the patch where its map peaks: (nearest defect patch's exemplar id, distance to it,
    distance to the nearest good patch); None without a defect patch bank."""
    if maps is None or embeddings.patches is None or not has_defect_patches(index):
        return None
    flat = embeddings.patches.reshape(len(maps), -1, embeddings.patches.shape[-1])
    values = maps.reshape(len(maps), -1)
    evidence = []
    for row in range(len(maps)):
        # the map is capped at the image's score: several patches may share its peak; the one nearest a known
        # defect patch speaks for the type
        tied = np.flatnonzero(values[row] >= values[row].max())
        defect, owners = nearest_defect_patches(index, flat[row, tied][None, :, None, :])
        best = int(np.argmin(defect[0, :, 0]))
        good, _ = nearest_patches(index, flat[row, tied[best]][None, None, None, :], index.k)
        owner = int(owners[0, best, 0])
        evidence.append(None if owner < 0 else (owner, float(defect[0, best, 0]), float(good[0, 0, 0])))
    return evidence
