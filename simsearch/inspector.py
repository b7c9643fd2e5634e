"""The whole pipeline behind one object: images -> embedder -> vectors -> index -> scores -> verdict.

`Inspector` follows scikit-learn's shape: `fit` returns self, learned state ends in `_`
(`index_`), `score_samples` gives raw anomaly scores (higher = more anomalous, as in PyOD and
anomalib), `decision_function` the normalised score minus 0.5, and `predict` 1 for a reject, 0 for a pass.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample, exemplar_samples, good_image_files
from simsearch.data.executors import Batch, BatchJob, Executor, LocalExecutor, check_readable
from simsearch.data.images import ImageError, ImageLike, patch_mask
from simsearch.data.inputs import expand_inputs
from simsearch.decide.policies import calibrate
from simsearch.decide.threshold import Threshold
from simsearch.embed import Embedder, create_embedder
from simsearch.embed.base import Embeddings, concat_embeddings, iter_embedded
from simsearch.embed.jobs import Embedded, EmbedJob
from simsearch.errors import ConflictError, InputError, NotFittedError, NotFoundError
from simsearch.evaluate.evaluation import (
    Evaluation,
    evaluate_dataset,
    leave_out_exemplars,
    maps_and_masks,
    score_samples,
)
from simsearch.evaluate.metrics import pixel_threshold_for_f1
from simsearch.index.catalogue import Exemplar
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.index.lock import DEFAULT_WAIT
from simsearch.index.persist import check_fingerprint, update_index
from simsearch.runtime import DEFAULT_WORKERS, Runtime
from simsearch.score.maps import add_boxes
from simsearch.score.modes import anomaly_scores, get_scoring_mode
from simsearch.score.results import ScoreResult, score_embeddings
from simsearch.score.scorer import Scorer, check_maps

MAP_SCALE_IMAGES = 16  # good exemplars re-scored at build time for the heatmap scale: ~16 more images to embed
FIT_CHUNK = 512  # good images embedded and coreset-reduced at a time: bounds memory on large sets


class Inspector(Scorer):
    """Anomaly scoring by similarity search over good (and defect) exemplars."""

    name = "knn"
    family = "similarity"
    workers = DEFAULT_WORKERS  # loader threads reading the next batches while the network runs (0: none)

    def __init__(self, embedder: Embedder | None = None, mode: str = "patch", k: int = 1,
                 coreset_ratio: float = 0.1, n_nearest: int = 3,
                 index_kind: str | Mapping[str, str] | Sequence[str] | None = None):
        self.embedder = embedder
        self.mode = mode
        self.k = k
        self.coreset_ratio = coreset_ratio
        self.n_nearest = n_nearest
        # "auto" (by size), a FAISS factory string for every store, or role -> kind (see simsearch.index.kinds)
        self.index_kind = index_kind
        self.index_: ExemplarIndex | None = None
        self.folder_: Path | None = None  # where the index was loaded from or saved to (workers elsewhere open it)
        self.weights_: str | None = None  # the weights file it was opened with, if one was named

    # -- building ---------------------------------------------------------------------------------
    def _require_embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = create_embedder("backbone:resnet18")
        return self.embedder

    def _require_index(self) -> ExemplarIndex:
        if self.index_ is None:
            raise NotFittedError("this Inspector has no index yet: call fit() or Inspector.load()")
        return self.index_

    def fit(self, good: Sequence[Sample] | ImageLike | Sequence[ImageLike],
            defects: ImageLike | Sequence[ImageLike] | None = None, defect_type: str | None = None,
            callbacks: Callbacks | None = None, executor: Executor | None = None) -> "Inspector":
        """Build a new index from labelled Samples (good ones index as good exemplars, defects as typed defect
        exemplars), or from good images (paths, folders, PIL images or arrays) and optional defects. `executor`:
        where the images are embedded (default: this process, `LocalExecutor`; `RayExecutor`: a Ray cluster);
        the index is the same either way."""
        defect_types = defect_masks = None
        if defects is None and _is_paths(good):
            good = exemplar_samples([good] if isinstance(good, (str, Path)) else good)  # a labelled folder's
            # defects become defect exemplars, never good ones
        if _is_samples(good):
            if defects is not None:
                raise InputError("give labelled samples or good images with defects, not both",
                                 hint="put the defects among the samples", parameter="defects")
            samples = list(good)
            good = [s.path for s in samples if not s.is_defect]
            defect_samples = [s for s in samples if s.is_defect]
            defects = [s.path for s in defect_samples] or None
            defect_types = [s.defect_type for s in defect_samples]
            defect_masks = [s.mask_path for s in defect_samples]
        embedder = self._require_embedder()
        mode = get_scoring_mode(self.mode)
        if mode.needs_patches and not embedder.supports_patches:
            raise InputError("this embedder gives no patch vectors: use mode='image'")
        good_inputs = _expand_good(good)
        if not good_inputs:
            raise ImageError("no good images found to build the index from")
        self.index_ = ExemplarIndex(embedder.dim, embedder.config, embedder.fingerprint, self.mode, self.k,
                                    self.coreset_ratio, index_kind=self.index_kind)
        readable = 0
        for start in range(0, len(good_inputs), FIT_CHUNK):
            chunk = good_inputs[start:start + FIT_CHUNK]
            try:
                self.add(chunk, "good", callbacks=callbacks, executor=executor)
                readable += 1
            except ImageError:
                if len(good_inputs) == 1:
                    raise
        if readable == 0:
            raise ImageError(f"none of the {len(good_inputs)} good inputs could be read as an image")
        if defects is not None:
            self.add(defects, "defect", defect_type=defect_type, defect_types=defect_types, callbacks=callbacks,
                     masks=defect_masks, executor=executor)
        self.index_.apply_index_kinds()  # trained once on the whole bank, not chunk by chunk
        if mode.needs_patches:  # a mode that gives maps
            self.index_.map_scale = self._map_scale()
        return self

    def _map_scale(self) -> dict[str, float] | None:
        """The good exemplars' own leave-one-out scores (a sample of MAP_SCALE_IMAGES of them, re-embedded
        from their files): the heatmaps' one fixed scale until the index is calibrated. None when fewer than
        two exemplars have files (in-memory images)."""
        try:
            scores = leave_one_out_scores(self, limit=MAP_SCALE_IMAGES)
        except InputError:
            return None
        return {"low": float(scores.min()), "high": float(scores.max()), "images": int(len(scores))}

    def add(self, images: ImageLike | Sequence[ImageLike], label: str = "good", defect_type: str | None = None,
            defect_types: Sequence[str | None] | None = None, callbacks: Callbacks | None = None,
            allow_duplicates: bool = True,
            masks: Sequence[str | Path | None] | None = None, executor: Executor | None = None) -> list[int]:
        """Embed and add exemplars; returns their ids. The index changes only once all are embedded. `masks`:
        a defect mask file (or None) per image, marking the patches that join the defect patch bank."""
        index = self._require_index()
        new, embeddings, mask_grids = self._embed_exemplars(images, label, defect_type, defect_types, callbacks,
                                                            masks, executor)
        return index.add(new, embeddings.image, embeddings.patches, allow_duplicates, mask_grids)

    def add_saved(self, folder: str | Path, images: ImageLike | Sequence[ImageLike], label: str = "good",
                  defect_type: str | None = None, defect_types: Sequence[str | None] | None = None,
                  allow_duplicates: bool = False, wait: float = DEFAULT_WAIT,
                  callbacks: Callbacks | None = None) -> tuple[list[int], list[str]]:
        """Embed images, then add them to the index saved in `folder` under its writer lock, on top of whatever
        other writers committed meanwhile (waiting up to `wait` s for them). Files the index already holds
        (same sha256) are skipped unless `allow_duplicates`. Returns the new ids and the skipped paths."""
        new, embeddings, _ = self._embed_exemplars(images, label, defect_type, defect_types, callbacks)

        def change(index: ExemplarIndex) -> tuple[list[int], list[NewExemplar]]:
            if allow_duplicates:  # one file held as good and as defect at once would score against itself
                held = {e.sha256: e for e in index.exemplars.values() if e.sha256}
                other = next((item for item in new if item.sha256 in held
                              and held[item.sha256].label != item.label), None)
                if other is not None:
                    exemplar = held[other.sha256]
                    raise ConflictError(f"{other.path} is held as exemplar {exemplar.id} ({describe_label(exemplar)});"
                                        f" it cannot also be {label}: nothing was added",
                                        hint=f"relabel it: simsearch relabel {exemplar.id} --label {label} "
                                             f"--index {folder}")
            skipped = [] if allow_duplicates else index.duplicates(new)
            return index.add(new, embeddings.image, embeddings.patches, allow_duplicates), skipped

        self.index_, (ids, skipped) = update_index(folder, change, self._require_embedder().fingerprint, wait)
        return ids, [item.path for item in skipped]

    def relabel_change(self, exemplar_id: int, label: str, defect_type: str | None = None,
                       ) -> Callable[[ExemplarIndex], tuple[Exemplar, Exemplar]]:
        """Embed exemplar `exemplar_id`'s file again (from this inspector's catalogue) and return the change, for
        `update_index`, that removes it and adds it back under `label`/`defect_type` with a new id (ids are never
        reused), so every scoring mode's stores are rebuilt for it by the normal add path. The change returns
        (old, new) exemplars; it refuses a file that is gone or changed (sha256), and the last good exemplar."""
        if label not in ("good", "defect"):
            raise InputError(f"label must be good or defect, got {label!r}")
        if defect_type and label != "defect":
            raise InputError("a defect type is only for the defect label")
        exemplar = self._require_index().exemplars.get(int(exemplar_id))
        if exemplar is None:
            raise NotFoundError(f"no exemplar with id {exemplar_id} in this index",
                                hint="see the ids with `simsearch info --exemplars`")
        if not os.path.isfile(exemplar.path):
            raise InputError(f"exemplar {exemplar.id}'s file {exemplar.path} is not there: it cannot be embedded "
                             "again under a new label", hint="remove the exemplar and add the image again")
        new, embeddings, _ = self._embed_exemplars([exemplar.path], label, defect_type or None, None, None)
        if new[0].sha256 != exemplar.sha256:
            raise InputError(f"exemplar {exemplar.id}'s file {exemplar.path} changed since it was added (sha256 "
                             "differs)", hint="remove the exemplar and add the file again")

        def change(index: ExemplarIndex) -> tuple[Exemplar, Exemplar]:
            held = index.exemplars.get(exemplar.id)
            if held is None or held.sha256 != exemplar.sha256:
                raise NotFoundError(f"exemplar {exemplar.id} is no longer in the index (another writer removed it)")
            if held.label == label and held.defect_type == new[0].defect_type:
                return held, held  # nothing to change
            index.remove([held.id])  # refuses the last good exemplar (and fewer goods than k): nothing saved
            new_id = index.add(new, embeddings.image, embeddings.patches, allow_duplicates=True)[0]
            return held, index.exemplars[new_id]

        return change

    def relabel_saved(self, folder: str | Path, exemplar_id: int, label: str, defect_type: str | None = None,
                      wait: float = DEFAULT_WAIT) -> tuple[Exemplar, Exemplar]:
        """Relabel one exemplar of the index saved in `folder`, in one transaction under its writer lock (see
        `relabel_change`). Returns (old, new) exemplars: the new one has a new id, or is the old one where the
        label and type were already these."""
        change = self.relabel_change(exemplar_id, label, defect_type)
        self.index_, (old, new) = update_index(folder, change, self._require_embedder().fingerprint, wait)
        return old, new

    def _embed_exemplars(self, images: ImageLike | Sequence[ImageLike], label: str, defect_type: str | None,
                         defect_types: Sequence[str | None] | None, callbacks: Callbacks | None,
                         masks: Sequence[str | Path | None] | None = None,
                         executor: Executor | None = None,
                         ) -> tuple[list[NewExemplar], Embeddings, list[np.ndarray | None] | None]:
        embedder = self._require_embedder()
        inputs = expand_inputs(images)
        if defect_types is not None and len(defect_types) != len(inputs):
            raise InputError(f"{len(defect_types)} defect types for {len(inputs)} images")
        if masks is not None and len(masks) != len(inputs):
            raise InputError(f"{len(masks)} masks for {len(inputs)} images")
        new: list[NewExemplar] = []
        kept_masks: list[str | Path | None] = []
        parts: list[Embeddings] = []
        for out in self._run(EmbedJob(embedder, sha256=True), inputs, executor, callbacks):
            for position, path, sha in zip(out.positions, out.paths, out.sha256):  # what the catalogue needs
                kind = defect_types[position] if defect_types is not None else defect_type
                # absolute (symlinks kept): nearest[].path and report thumbnails work from any folder
                source = os.path.abspath(path) if path is not None else f"<array {sha[:12]}>"
                new.append(NewExemplar(source, label, kind, sha))
                kept_masks.append(masks[position] if masks is not None else None)
            parts.append(out.embeddings)
        if not new:
            raise ImageError("nothing to add: no readable image")
        embeddings = concat_embeddings(parts)
        if embeddings.patches is None or not any(kept_masks):
            return new, embeddings, None
        grid = embeddings.patches.shape[1:3]
        return new, embeddings, [None if path is None else patch_mask(path, grid) for path in kept_masks]

    def _run(self, job: BatchJob, inputs: Sequence[ImageLike], executor: Executor | None,
             callbacks: Callbacks | None) -> Iterator[Any]:
        """`job`'s outputs over `inputs` on `executor` (default: this process, with this inspector's loader
        threads), the batches with readable images only; skips and progress reported here, in input order."""
        executor = executor or LocalExecutor(self.workers)
        callbacks = callbacks or Callbacks()
        readable, first_reason = 0, None
        for out in executor.map_batches(job, inputs):
            for name, reason in out.skipped:
                first_reason = first_reason or reason
                callbacks.skip(name, reason)
            done = _count(out)
            readable += done
            if done + len(out.skipped):
                callbacks.progress(done + len(out.skipped))
            if done:
                yield out
        check_readable(len(inputs), readable, first_reason)

    def remove(self, ids: Sequence[int]) -> None:
        """Remove exemplars by id."""
        self._require_index().remove(ids)

    # -- scoring ----------------------------------------------------------------------------------
    def iter_score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
                   maps: str = "all", executor: Executor | None = None) -> Iterator[ScoreResult]:
        """Score images, one result at a time as batches finish: raw and normalised score, verdict (once a
        threshold exists), nearest exemplars, and anomaly maps: for every image (maps="all"), or only where a
        reject's boxes need them ("needed": the same scores, from a search that skips most patches of the
        images that pass). `executor`: where batches are embedded and scored (default: this process; beyond it,
        e.g. `RayExecutor`, each worker opens the index from `folder_`, and the results carry no maps)."""
        check_maps(maps)
        self._require_index()
        self._require_embedder()
        for out in self._run(ScoreJob(self, maps), expand_inputs(images), executor, callbacks):
            yield from out.results

    def _apply_thresholds(self, index: ExemplarIndex, embeddings: Embeddings, results: list[ScoreResult],
                          threshold: Threshold | None) -> None:
        """Verdicts, and boxes for the rejects (their maps first, where the scores were found without)."""
        if threshold is None:
            return
        for result in results:
            result.normalised_score = float(threshold.normalise([result.score])[0])
            result.is_anomaly = bool(threshold.is_anomalous([result.score])[0])
        if threshold.pixel is None:
            return
        unmapped = [row for row, r in enumerate(results) if r.is_anomaly and r.patch_map is None]
        if unmapped and embeddings.patches is not None and get_scoring_mode(index.mode).needs_patches:
            _, patch_maps = anomaly_scores(index, Embeddings(embeddings.image[unmapped], embeddings.patches[unmapped]))
            for row, patch_map in zip(unmapped, patch_maps if patch_maps is not None else []):
                results[row].patch_map, results[row].map_from_patches = patch_map, True
        for result in results:
            add_boxes(result, threshold.pixel, bool(result.is_anomaly))

    def score_samples(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Raw anomaly scores, higher = more anomalous."""
        return np.array([r.score for r in self.score(images, maps="needed")])  # scores need no passing map

    @property
    def heatmap_scale_(self) -> Threshold | None:
        """What heatmaps are coloured by: the calibrated threshold, or before calibration the index's map scale
        (its largest good leave-one-out score at mid-scale, its smallest at 0.1), or None (an index built
        before map scales were stored: each map stretched on its own)."""
        threshold = self.threshold_
        if threshold is not None:
            return threshold
        scale = self._require_index().map_scale
        if not scale:
            return None
        high = float(scale["high"])
        low = float(scale["low"]) if float(scale["low"]) < high else high / 2
        return Threshold(value=high, low=low, high=high, policy="map-scale",
                         reason="the good exemplars' leave-one-out scores (not calibrated)")

    @property
    def threshold_(self) -> Threshold | None:
        """The stored threshold (None until calibrated), read from the index's manifest record."""
        record = self._require_index().threshold
        return Threshold.from_record(record) if record else None

    def calibrate(self, samples: Sequence[Sample] | None = None, policy: str | None = None,
                  target: float | None = None, **options) -> Threshold:
        """Choose and store a threshold (see `calibrate_index`); save the index after."""
        return calibrate_index(self, samples, policy, target, **options)

    def evaluate(self, samples: Sequence[Sample], **options) -> Evaluation:
        """Score a labelled set and measure it (see `simsearch.evaluate.evaluate_dataset`)."""
        return evaluate_dataset(self, samples, **options)

    def _threshold(self) -> Threshold:
        threshold = self.threshold_
        if threshold is None:
            raise NotFittedError("no threshold yet", hint="calibrate the index first (Inspector.calibrate)")
        return threshold

    def decision_function(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Normalised score minus 0.5: positive means reject."""
        return self._threshold().normalise(self.score_samples(images)) - 0.5

    def predict(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """1 for images at or above the threshold (reject), 0 otherwise."""
        return self._threshold().is_anomalous(self.score_samples(images)).astype(int)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, folder: str | Path, force: bool = False, wait: float = DEFAULT_WAIT, compile: bool = False) -> None:
        """Write the index (atomically, under the folder's writer lock) to a folder; replacing another index
        there needs `force` (see ExemplarIndex.save). `compile`: export a compiled copy of the embedder (ONNX,
        checked against torch) for the index to keep, where the embedder has one and the index has none yet (a
        copy the index has is kept either way; adding, removing and calibrating keep it too: it depends on the
        embedder alone)."""
        index = self._require_index()
        if compile and _stored_copy(index) is None:
            _keep_compiled(index, self._compiled_copy())
        index.save(folder, force=force, wait=wait)
        self.folder_ = Path(folder)

    def _compiled_copy(self) -> tuple[bytes, dict] | None:
        """A compiled copy of the embedder for the index to keep (once a process; None where there is none)."""
        from simsearch.embed.compiled import compile_embedder

        return compile_embedder(self._require_embedder())

    def save_threshold(self, folder: str | Path, wait: float = DEFAULT_WAIT) -> bool:
        """Store the threshold in the index saved in `folder`, under its writer lock and on top of what other
        writers committed; True when they had changed it since this inspector read it."""
        index = self._require_index()
        record, read_at = index.threshold, index.generation

        def change(saved: ExemplarIndex) -> bool:
            # with the generation this save commits: `info` says when exemplars changed after it
            saved.threshold = {**record, "generation": saved.generation + 1} if record else record
            return saved.generation != read_at

        self.index_, changed = update_index(folder, change, self._require_embedder().fingerprint, wait)
        return changed

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, embedder: Embedder | None = None,
             n_nearest: int = 3, compiled: bool | None = None, runtime: Runtime | None = None,
             data_root: str | Path | None = None, **options: Any) -> "Inspector":
        """Open a saved index with the embedder it was built with (refusing any other). `data_root`: the folder
        that now holds the exemplars' files, where they moved elsewhere than with the index (`ExemplarIndex.load`).

        `runtime` (or its fields as keywords: device, batch_size, precision, workers; other keywords go to the
        torch embedder): how the embedder runs. `compiled`: run the index's compiled copy of the embedder (ONNX
        Runtime: the same vectors, no torch to import). None: where it applies (on the CPU in float32, with no
        other weights file than the recorded one) and the index has one; True: or fail; False: never (see
        `simsearch.embed.choose`)."""
        fields = {name: options.pop(name) for name in ("device", "batch_size", "precision", "workers")
                  if name in options}
        runtime = Runtime.of(runtime, compiled=compiled, **fields)
        index = ExemplarIndex.load(folder, fingerprint=None if embedder is None else embedder.fingerprint,
                                   data_root=data_root)
        if embedder is None:
            from simsearch.embed.choose import choose_embedder

            embedder = choose_embedder(index.embedder_config, _stored_copy(index), runtime, weights, folder, options)
            check_fingerprint(folder, index.fingerprint, embedder.fingerprint)
        inspector = cls(embedder, index.mode, index.k, index.coreset_ratio, n_nearest, dict(index.index_kinds))
        inspector.index_ = index
        inspector.workers = runtime.workers
        inspector.folder_ = Path(folder)
        inspector.weights_ = None if weights is None else str(Path(weights).resolve())
        return inspector


def export_compiled(folder: str | Path, weights: str | Path | None = None, wait: float = DEFAULT_WAIT,
                    runtime: Runtime | None = None) -> dict[str, Any]:
    """Export the compiled copy of the embedder of the index saved in `folder` (ONNX, checked against torch on
    probe images) and keep it with the index, under its writer lock; returns the copy's record. An index that
    has one keeps it (the record returned is that one's). An InputError where the embedder cannot be compiled."""
    inspector = Inspector.load(folder, weights=weights, runtime=Runtime.of(runtime, compiled=False))
    held = _stored_copy(inspector.index_)
    if held is not None:
        return held[1]
    copy = inspector._compiled_copy()
    if copy is None:
        raise InputError(f"the {inspector.embedder.config.get('kind')} embedder of {folder} has no compiled form "
                         "(or its export did not give torch's vectors): the index runs with torch",
                         hint="score with torch (leave --compiled out)")

    def change(index: ExemplarIndex) -> None:
        _keep_compiled(index, copy)

    update_index(folder, change, inspector.embedder.fingerprint, wait)
    return copy[1]


@dataclass
class Scored:
    """One batch's results, and the inputs of the batch that could not be read as (name, reason)."""

    results: list[ScoreResult]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class ScoreJob(BatchJob[Scored]):
    """Scoring as a batch job: embed (`first`), then search and decide (`then`, beside the next batch's forward
    pass in this process). A copy in another process opens the index from the inspector's folder, with the same
    weights file, batch size and n_nearest; its results cross back as `ScoreResult.to_dict` records with exact
    scores (`ScoreResult.from_dict`), maps left behind."""

    def __init__(self, inspector: Inspector, maps: str = "all"):
        self.inspector: Inspector | None = inspector
        self.batch_size = inspector.embedder.batch_size
        self.maps = maps
        self.n_nearest = inspector.n_nearest
        self.folder = None if inspector.folder_ is None else str(Path(inspector.folder_).resolve())
        self.weights = inspector.weights_
        self._threshold: tuple[Threshold | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        if self.folder is None:
            raise InputError("scoring beyond this process opens the index from its folder, and this index has none",
                             hint="save the index (or load it from its folder) first")
        return {**self.__dict__, "inspector": None, "_threshold": None}

    def _inspector(self) -> Inspector:
        if self.inspector is None:  # a copy in a worker: the saved index, this worker's device
            self.inspector = Inspector.load(self.folder, weights=self.weights, n_nearest=self.n_nearest,
                                            runtime=Runtime(device=self.device, batch_size=self.batch_size))
        return self.inspector

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        return self._inspector().embedder.prepare(pixels)

    def first(self, batch: Batch) -> tuple[Batch, Embeddings]:
        return batch, self._inspector().embedder.embed([item.pixels for item in batch.items])

    def then(self, embedded: tuple[Batch, Embeddings]) -> Scored:
        batch, embeddings = embedded
        if not batch.items:
            return Scored([], list(batch.skipped))
        inspector = self._inspector()
        index = inspector._require_index()
        if self._threshold is None:  # read once: every batch is decided by the same threshold
            self._threshold = (inspector.threshold_,)
        results = score_embeddings(index, embeddings, [i.path for i in batch.items], self.n_nearest,
                                   self.maps == "all")
        for item, result in zip(batch.items, results):
            result.image_size = item.size
        inspector._apply_thresholds(index, embeddings, results, self._threshold[0])
        return Scored(results, list(batch.skipped))

    def stages(self) -> tuple[Callable[[Batch], Any], Callable[[Any], Scored]]:
        return self.first, self.then

    def __call__(self, batch: Batch) -> Scored:
        return self.then(self.first(batch))

    def encode(self, output: Scored) -> dict[str, Any]:
        return {"results": [result.to_dict(exact=True) for result in output.results], "skipped": output.skipped}

    def decode(self, encoded: dict[str, Any]) -> Scored:
        return Scored([ScoreResult.from_dict(record) for record in encoded["results"]],
                      [tuple(pair) for pair in encoded["skipped"]])


def _count(out: Embedded | Scored) -> int:
    """Readable images in a job's output."""
    return len(out.results) if isinstance(out, Scored) else len(out.positions)


def _stored_copy(index: ExemplarIndex) -> tuple[bytes, dict] | None:
    """The compiled copy of its embedder the index keeps among its artifacts (None: none)."""
    from simsearch.embed.compiled import stored_copy

    return stored_copy(index.artifacts, index.artifact_records, index.fingerprint)


def _keep_compiled(index: ExemplarIndex, copy: tuple[bytes, dict] | None) -> None:
    """Keep a compiled copy among the index's artifacts (it is written with the index at every save)."""
    from simsearch.embed.compiled import keep_copy

    if copy is not None and _stored_copy(index) is None:
        keep_copy(index.artifacts, index.artifact_records, copy)


def describe_label(exemplar: Exemplar) -> str:
    """'good', or 'defect, type T'."""
    return exemplar.label + (f", type {exemplar.defect_type}" if exemplar.defect_type else "")


def held_otherwise(index: ExemplarIndex, paths: Sequence[str], label: str) -> dict[str, Exemplar]:
    """Of files skipped as held already (same sha256), those the index holds under another label than `label`:
    path -> the exemplar holding it (the lowest id, where several do)."""
    from simsearch.files import file_sha256

    if not paths:
        return {}
    by_sha = {e.sha256: e for _, e in sorted(index.exemplars.items(), reverse=True) if e.sha256}
    held = {path: by_sha.get(file_sha256(path)) for path in paths}
    return {path: exemplar for path, exemplar in held.items() if exemplar is not None and exemplar.label != label}


def _is_samples(items: object) -> bool:
    """True for a non-empty list of labelled Samples (what Scorer.fit takes)."""
    return isinstance(items, (list, tuple)) and bool(items) and all(isinstance(i, Sample) for i in items)


def _is_paths(items: object) -> bool:
    """True for a path or a non-empty list of paths."""
    if isinstance(items, (str, Path)):
        return True
    return isinstance(items, (list, tuple)) and bool(items) and all(isinstance(i, (str, Path)) for i in items)


def _expand_good(good: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    items = [good] if isinstance(good, (str, Path, Image.Image, np.ndarray)) else list(good)
    paths = [i for i in items if isinstance(i, (str, Path))]
    others = [i for i in items if not isinstance(i, (str, Path))]
    return list(good_image_files(paths)) + others if paths else others


def leave_one_out_scores(inspector: Inspector, callbacks: Callbacks | None = None,
                         limit: int | None = None) -> np.ndarray:
    """Scores of the index's own good exemplars, each against all the others (never against itself),
    re-embedded from their source files (`limit`: only that many, evenly spread over the ids)."""
    index = inspector.index_
    good = sorted((e for e in index.exemplars.values() if e.label == "good"), key=lambda e: e.id)
    by_path = {e.path: e for e in good}
    present = [e.path for e in good if Path(e.path).is_file()]
    if limit is not None and len(present) > limit:
        present = [present[i] for i in np.linspace(0, len(present) - 1, limit).round().astype(int)]
    if len(present) < 2:
        raise InputError("good-only calibration re-scores the index's good exemplars from their files, and "
                         f"only {len(present)} of them can be found; pass a folder of good images instead")
    scores = []
    for batch, embeddings in iter_embedded(inspector.embedder, present, callbacks):
        for row, item in enumerate(batch):
            single = Embeddings(embeddings.image[row:row + 1],
                                None if embeddings.patches is None else embeddings.patches[row:row + 1])
            value, _ = anomaly_scores(index, single, exclude=by_path[item.path].id)
            scores.append(float(value[0]))
    return np.asarray(scores)


def calibrate_index(inspector: Inspector, samples: Sequence[Sample] | None = None, policy: str | None = None,
                    target: float | None = None, source: str = "", callbacks: Callbacks | None = None) -> Threshold:
    """Choose a threshold on a labelled set (or, with none, on the index's own good exemplars left out one
    at a time) and store it in the index's manifest (in memory: save the index after)."""
    index = inspector.index_
    if samples is None:
        scores = leave_one_out_scores(inspector, callbacks)
        calibration = calibrate(np.zeros(len(scores), int), scores, policy or "good-only", target)
        calibration.reason += " (leave-one-out on the index's good exemplars)"
        source = source or "index exemplars, leave-one-out"
    else:
        fresh = leave_out_exemplars(inspector, samples, "calibration", callbacks)
        kept, results = score_samples(inspector, fresh, callbacks)
        labels = np.array([s.is_defect for s in kept], dtype=int)
        calibration = calibrate(labels, np.array([r.score for r in results]), policy, target)
        pixels = maps_and_masks(kept, results)
        if pixels is not None and pixels[1].any():
            calibration.pixel_value = pixel_threshold_for_f1(*pixels)
            calibration.reason += "; map threshold for boxes: the pixel-F1-best on the masks"
    calibration.calibrated_on = source
    calibration.generation = index.generation + 1  # the next save's (save_threshold writes the one it commits)
    index.threshold = calibration.to_record()
    return calibration


def build_index(good: Sequence[Path], out: str | Path, defects: Sequence[Sample] = (), *, mode: str | None = None,
                embedder: str = "backbone:resnet18", weights: str | Path | None = None, pretrained: bool = True,
                image_size: int = 224, aspect: str = "keep", layers: Sequence[str] | None = None, k: int = 1,
                coreset_ratio: float = 0.1, index_kind: Sequence[str] | None = None, runtime: Runtime | None = None,
                force: bool = False, compile: bool = True, wait: float = DEFAULT_WAIT,
                executor: Executor | None = None, callbacks: Callbacks | None = None) -> dict[str, Any]:
    """Build an index of the `good` image files (and the labelled `defects`) in `out` and describe it: counts,
    mode (and `mode_reason` where none was named), embedder, seconds, bytes on disk, each store's index kind.
    `embedder`: KIND:ARG (`backbone:NAME` takes `layers`, and with `aspect` keep the good images' aspect ratio
    at `image_size` on the short side). Everything is checked before the first image is embedded (a wrong
    index kind, an index already in `out` without `force`)."""
    from simsearch.data.transforms import check_aspect, input_size_for
    from simsearch.index.kinds import parse_kinds
    from simsearch.index.persist import refuse_to_replace
    from simsearch.score.modes import default_mode

    mode_reason = None
    if mode is None:  # the library's rule, said with the summary: which mode and why
        mode, mode_reason = default_mode(len(defects))
    start = time.perf_counter()
    if embedder.startswith("backbone:"):  # the other kinds keep the input size they were trained at
        image_size = input_size_for([str(p) for p in good], image_size, aspect)
    else:
        check_aspect(aspect)
    model = create_embedder(embedder, weights=weights, pretrained=pretrained, image_size=image_size,
                            layers=list(layers) if layers else None, **Runtime.of(runtime).embedder_options())
    kinds = parse_kinds(index_kind or None, model.dim)  # a wrong kind fails here, before any embedding
    refuse_to_replace(out, force)  # before the embedding; again when saving
    inspector = Inspector(model, mode=mode, k=k, coreset_ratio=coreset_ratio, index_kind=kinds)
    callbacks = callbacks or Callbacks()
    with callbacks.staged("embedding", len(good) + len(defects)) as advance:  # its own bar, closed before saving
        embedding = replace(callbacks, progress=advance)
        inspector.fit(list(good), callbacks=embedding, executor=executor)
        if defects:
            inspector.add([s.path for s in defects], "defect", defect_types=[s.defect_type for s in defects],
                          callbacks=embedding, executor=executor)
    inspector.save(out, force=force, compile=compile, wait=wait)
    index = inspector.index_
    return {"index": str(out), **index.counts(), "defect_types": index.defect_types(), "dim": index.dim,
            "mode": index.mode, "mode_reason": mode_reason, "embedder": model.config,
            "fingerprint": model.fingerprint, "seconds": round(time.perf_counter() - start, 2),
            "bytes": sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file()),
            "index_kinds": index.describe()["index_kinds"]}
