"""Similarity search as compared methods (family "similarity"): kNN over the frozen backbone's image or patch
vectors, and kNN over the triplet-loss embedders, TRAINED PER FOLD on the fold's training part only.

Every method indexes its whole training part (goods as good exemplars, defects as typed defect exemplars) and
places its threshold on OUT-OF-FOLD scores of that same part (`out_of_fold_scores`: each exemplar scored with
itself left out of the index), with the one rule of `thresholds.place_threshold` (F1-best with enough
defects, else good-only). The triplet trainers pick their best epoch on a validation part they carve
themselves (`validation_split`, val_fraction)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from simsearch.baselines.persist import write_baseline
from simsearch.baselines.registry import register_baseline
from simsearch.baselines.thresholds import LEAVE_ONE_OUT, basis, place_threshold
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from simsearch.data.images import ImageLike, patch_mask
from simsearch.decide.threshold import Threshold
from simsearch.embed import Embedder, create_embedder
from simsearch.embed.base import Embeddings, iter_embedded
from simsearch.errors import NotFittedError
from simsearch.index.exemplar_index import NewExemplar
from simsearch.inspector import Inspector
from simsearch.runtime import DEFAULT_BATCH_SIZE, Runtime
from simsearch.score.modes import anomaly_scores
from simsearch.score.results import ScoreResult
from simsearch.score.scorer import Scorer

EMBEDDER_FILE = "embedder.pt"  # a trained embedder's checkpoint, beside the index, in a saved method's folder
INDEX_DIR = "index"
TRIPLET_HEAD_EPOCHS = 30  # cached backbone vectors make head epochs cheap; early stopping ends most runs sooner
# Views per image for the head: 1 (the image itself) lets every fold and draw reuse the remembered backbone
# vectors; augmented views (option triplet-head.views=2) are embedded afresh each time.
TRIPLET_HEAD_VIEWS = 1
MEMO_BYTES = 1 << 30  # at most this much remembered backbone vectors (ELPV at 128 px: ~0.4 GB with patches)


class MemoEmbedder(Embedder):
    """An embedder that remembers the vectors of the images it has embedded (keyed by their pixels), so that
    compare's folds and learning-curve draws embed each image once. It is the embedder it wraps in every way
    that is saved (config, fingerprint), so an index built through it opens with the plain embedder."""

    def __init__(self, inner: Embedder, budget_bytes: int = MEMO_BYTES):
        self.inner = inner
        self.kind = inner.kind
        self.batch_size = inner.batch_size
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._vectors: dict[bytes, tuple[np.ndarray, np.ndarray | None]] = {}

    def __getattr__(self, name: str) -> Any:  # device, image_size, ...: the wrapped embedder's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None, **runtime: Any) -> Embedder:
        raise NotImplementedError("a MemoEmbedder wraps a built embedder; rebuild the inner one from its config")

    @classmethod
    def from_spec(cls, argument: str, **options: Any) -> Embedder:
        raise NotImplementedError("a MemoEmbedder wraps a built embedder")

    @property
    def config(self) -> dict[str, Any]:
        return self.inner.config

    @property
    def weights_digest(self) -> str:
        return self.inner.weights_digest

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def supports_patches(self) -> bool:
        return self.inner.supports_patches

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        keys = [_pixel_key(image) for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self._vectors]
        fresh: dict[bytes, tuple[np.ndarray, np.ndarray | None]] = {}
        if missing:
            computed = self.inner.embed([images[i] for i in missing])
            for row, i in enumerate(missing):
                fresh[keys[i]] = (computed.image[row], None if computed.patches is None else computed.patches[row])
                size = computed.image[row].nbytes + (0 if computed.patches is None else computed.patches[row].nbytes)
                if self.used_bytes + size <= self.budget_bytes:
                    self._vectors[keys[i]] = fresh[keys[i]]
                    self.used_bytes += size
        rows = [fresh.get(key) or self._vectors[key] for key in keys]
        patches = None if any(r[1] is None for r in rows) else np.stack([r[1] for r in rows])
        return Embeddings(np.stack([r[0] for r in rows]), patches)


def _pixel_key(image: np.ndarray) -> bytes:
    array = np.ascontiguousarray(image)
    return hashlib.blake2b(str((array.shape, array.dtype.str)).encode() + array.tobytes(), digest_size=16).digest()


_MEMOS: dict[str, MemoEmbedder] = {}  # one per frozen-backbone fingerprint, for the life of the process


def memo_embedder(embedder: Embedder) -> MemoEmbedder:
    """The process's MemoEmbedder for this embedder's fingerprint (the frozen backbone's vectors never change)."""
    memo = _MEMOS.get(embedder.fingerprint)
    if memo is None:
        _MEMOS.clear()  # keep one backbone's vectors at a time: the memory stays bounded by MEMO_BYTES
        memo = _MEMOS[embedder.fingerprint] = MemoEmbedder(embedder)
    return memo


class InspectorScorer(Scorer):
    """A compared method whose fitted state is an Inspector (`inspector_`): scoring and the threshold are its."""

    inspector_: Inspector | None = None
    threshold_basis_: str | None = None  # where the threshold was placed, e.g. "leave-one-out f1"
    threshold_paths_: tuple[str, ...] | list[str] = ()  # the training images whose scores placed it

    def _require(self) -> Inspector:
        if self.inspector_ is None:
            raise NotFittedError(f"this {self.name} method is not fitted: call fit() or load it")
        return self.inspector_

    def iter_score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
                   maps: str = "all") -> Iterator[ScoreResult]:
        """The Inspector's results: kNN score, verdict at the validation threshold, maps and nearest exemplars."""
        return self._require().iter_score(images, callbacks, maps)

    @property
    def threshold_(self) -> Threshold | None:
        return self.inspector_.threshold_ if self.inspector_ is not None else None


class SimilarityMethod(InspectorScorer):
    """An Inspector over an embedder, its threshold placed on a validation part of the training samples."""

    family = "similarity"

    def __init__(self, name: str, settings: Any, callbacks: Callbacks | None = None):
        self.name = name
        self.settings = settings
        self.callbacks = callbacks or Callbacks()
        # the triplet embedders give image vectors
        self.mode = {"knn-patch": "patch", "knn-contrast": "contrast", "knn-open-set": "open-set"}.get(name, "image")
        self.inspector_: Inspector | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.checkpoint_: Path | None = None  # the trained embedder's checkpoint (triplet methods)
        self._work: tempfile.TemporaryDirectory | None = None

    # -- training -----------------------------------------------------------------------------------
    def _runtime(self) -> dict[str, Any]:
        return Runtime.of(batch_size=self.settings.batch_size, device=self.settings.device).embedder_options()

    def _train_embedder(self, samples: Sequence[Sample]) -> Embedder:
        """The frozen backbone (kNN methods); the triplet methods override this to train one."""
        settings = self.settings
        return memo_embedder(create_embedder(f"backbone:{settings.backbone}", weights=settings.weights,
                                             pretrained=settings.pretrained, image_size=settings.image_size,
                                             **self._runtime()))

    def _train_settings(self, epochs: int):
        from simsearch.train.loop import TrainSettings

        settings = self.settings
        # The trainers carve their validation part (early stopping) with validation_split(samples, val_fraction, seed).
        return TrainSettings(epochs=epochs, seed=settings.seed, val_fraction=settings.val_fraction,
                             patience=settings.patience, device=settings.device, save_interval=max(epochs, 1))

    def _work_dir(self) -> Path:
        self._work = tempfile.TemporaryDirectory(prefix=f"simsearch-{self.name}-")
        return Path(self._work.name)

    def _keep(self, result) -> None:
        self.history_ = [dict(row) for row in result.history]
        self.best_epoch_ = result.best_epoch
        self.checkpoint_ = Path(result.model_path)

    def fit(self, samples: Sequence[Sample]) -> "SimilarityMethod":
        """Train the embedder (if any) on the samples, index them all, and place the threshold on their
        out-of-fold scores (each scored with itself left out of the index)."""
        samples = list(samples)
        embedder = self._train_embedder(samples)
        settings = self.settings
        inspector = Inspector(embedder, mode=self.mode, k=settings.k, coreset_ratio=settings.coreset_ratio)
        inspector.fit(samples)
        self.inspector_ = inspector
        set_out_of_fold_threshold(self, samples)
        return self

    # -- scoring (iter_score, threshold_: InspectorScorer) --------------------------------------------
    def describe(self) -> dict[str, Any]:
        inspector = self._require()
        threshold = inspector.threshold_
        return {"scorer": self.name, "family": self.family, "mode": self.mode,
                "embedder": inspector.embedder.config if inspector.embedder is not None else None,
                "best_epoch": self.best_epoch_, "threshold": threshold.to_record() if threshold else None}

    # -- persistence --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """baseline.json (kind, files, history) + the index in folder/index (+ the trained embedder's
        checkpoint as folder/embedder.pt), so that `simsearch score --model FOLDER` opens it."""
        inspector = self._require()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"index": INDEX_DIR}
        if self.checkpoint_ is not None:
            shutil.copyfile(self.checkpoint_, folder / EMBEDDER_FILE)
            files["embedder"] = EMBEDDER_FILE
        inspector.save(folder / INDEX_DIR, force=True)  # a rerun replaces its own fold models
        write_baseline(folder, {"kind": self.name, "family": self.family, "mode": self.mode, "files": files,
                                "embedder": inspector.embedder.config, "history": self.history_,
                                "best_epoch": self.best_epoch_}, {})

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, **runtime: Any) -> "SimilarityMethod":
        """Open a method saved by `save`; refuses a folder holding another kind of model."""
        from simsearch.baselines.persist import BaselineError, load_baseline

        scorer = load_baseline(folder, weights=weights, **runtime)
        if not isinstance(scorer, cls):
            raise BaselineError(f"{folder} holds a {scorer.name} model, not a {cls.__name__}",
                                hint="open it with simsearch.load")
        return scorer

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict, weights: str | Path | None = None,
                   batch_size: int | None = None, device: str | None = None) -> "SimilarityMethod":
        """Reopen a saved method: its index, with the trained embedder's checkpoint when it has one ('files'
        are absolute here: load_baseline resolves them against the folder)."""
        runtime = Runtime.of(batch_size=batch_size, device=device)
        files = config["files"]
        embedder = None
        if files.get("embedder"):
            extra = {"weights": weights} if config["kind"] == "triplet-head" else {}
            embedder = create_embedder(f"{config['kind']}:{files['embedder']}", **extra, **runtime.embedder_options())
        method = BUILDERS[config["kind"]](config["kind"], _Loaded(runtime.batch_size, device))
        method.inspector_ = Inspector.load(files["index"], weights=weights, embedder=embedder, runtime=runtime)
        method.history_ = list(config.get("history") or [])
        method.best_epoch_ = config.get("best_epoch")
        method.checkpoint_ = Path(files["embedder"]) if files.get("embedder") else None
        return method


class _Loaded:
    """The few settings a loaded method keeps (it is not trained again)."""

    def __init__(self, batch_size: int | None, device: str | None):
        self.batch_size, self.device = batch_size or DEFAULT_BATCH_SIZE, device


def out_of_fold_scores(inspector: Inspector, samples: Sequence[Sample]) -> tuple[list[Sample], np.ndarray]:
    """Each indexed training sample's score with itself left out of the index (the samples the index holds, in
    the order scored, and their scores). A good exemplar goes through the scoring modes' leave-one-out path
    (`exclude`: its image vector, patches and region are skipped); a defect exemplar is taken out of the
    defect stores (image vector, patches, region, and so the defect coherence), scored, and put back from
    the same embeddings: scored as if it had never been indexed. The index holds the same exemplars after
    (the defects under new ids). Costs one search per training image."""
    index = inspector._require_index()
    by_path = {os.path.abspath(str(s.path)): s for s in samples}
    exemplars = {e.path: e for e in index.exemplars.values() if e.path in by_path}
    kept: list[Sample] = []
    scores: list[float] = []
    for batch, embeddings in iter_embedded(inspector.embedder, [Path(p) for p in exemplars]):
        for row, item in enumerate(batch):
            exemplar = exemplars[os.path.abspath(str(item.path))]
            sample = by_path[exemplar.path]
            single = Embeddings(embeddings.image[row:row + 1],
                                None if embeddings.patches is None else embeddings.patches[row:row + 1])
            if exemplar.label == "good":
                value = anomaly_scores(index, single, exclude=exemplar.id, maps=False)[0]
            else:
                index.remove([exemplar.id])
                value = anomaly_scores(index, single, maps=False)[0]
                masks = None
                if single.patches is not None and sample.mask_path is not None:
                    masks = [patch_mask(sample.mask_path, single.patches.shape[1:3])]
                index.add([NewExemplar(exemplar.path, "defect", exemplar.defect_type, exemplar.sha256)],
                          single.image, single.patches, masks=masks)
            kept.append(sample)
            scores.append(float(value[0]))
    return kept, np.asarray(scores)


def set_out_of_fold_threshold(method: InspectorScorer, samples: Sequence[Sample]) -> None:
    """Place the fitted method's threshold on its training samples' leave-one-out scores (stored in its
    index, so that verdicts and saved models carry it) and record the basis (`threshold_basis_`) and the
    paths whose scores placed it (`threshold_paths_`: tests check that no test image is among them)."""
    inspector = method._require()
    kept, scores = out_of_fold_scores(inspector, samples)
    threshold = place_threshold(np.array([int(s.is_defect) for s in kept]), scores, LEAVE_ONE_OUT)
    if threshold is not None:
        inspector.index_.threshold = threshold.to_record()
    method.threshold_basis_ = basis(threshold, LEAVE_ONE_OUT)
    method.threshold_paths_ = [str(s.path) for s in kept]


class TripletHeadMethod(SimilarityMethod):
    """A triplet-loss projection head on the frozen backbone, trained on the fold's training samples."""

    def _train_embedder(self, samples: Sequence[Sample]) -> Embedder:
        from simsearch.embed.backbone import BackboneEmbedder
        from simsearch.embed.triplet_head import HeadConfig, TripletHeadEmbedder
        from simsearch.train.tasks.triplet_head import train_triplet_head

        settings = self.settings
        options = settings.options.get(self.name, {})
        # The frozen backbone's vectors are remembered across folds and draws (the kNN methods share them).
        frozen = memo_embedder(BackboneEmbedder(settings.backbone, image_size=settings.image_size,
                                                weights=settings.weights, pretrained=settings.pretrained,
                                                **self._runtime()))
        result = train_triplet_head(list(samples), frozen, self._work_dir(), HeadConfig(),
                                    self._train_settings(int(options.get("epochs", TRIPLET_HEAD_EPOCHS))),
                                    views=int(options.get("views", TRIPLET_HEAD_VIEWS)))
        self._keep(result)
        embedder = TripletHeadEmbedder(result.model_path, weights=settings.weights, **self._runtime())
        embedder.backbone = frozen  # the same vectors, remembered
        return embedder


class TripletAutoencoderMethod(SimilarityMethod):
    """The triplet-loss convolutional autoencoder, trained on the fold's training samples."""

    def _train_embedder(self, samples: Sequence[Sample]) -> Embedder:
        from simsearch.embed.triplet_ae import AutoencoderConfig
        from simsearch.train.tasks.triplet_ae import train_triplet_ae

        settings = self.settings
        options = settings.options.get(self.name, {})
        config = AutoencoderConfig(image_size=int(options.get("image_size", 128)))
        result = train_triplet_ae(list(samples), self._work_dir(), config,
                                  self._train_settings(int(options.get("epochs", settings.epochs))))
        self._keep(result)
        return create_embedder(f"triplet-ae:{result.model_path}", **self._runtime())


BUILDERS = {"knn-image": SimilarityMethod, "knn-patch": SimilarityMethod, "knn-contrast": SimilarityMethod,
            "knn-open-set": SimilarityMethod, "triplet-head": TripletHeadMethod,
            "triplet-ae": TripletAutoencoderMethod}


def _builder(name: str):
    def build(settings: Any, callbacks: Callbacks | None = None) -> SimilarityMethod:
        return BUILDERS[name](name, settings, callbacks)
    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


def _load(config: dict[str, Any], tensors: dict, weights: str | Path | None = None, **runtime: Any) -> Scorer:
    return SimilarityMethod.from_saved(config, tensors, weights, **runtime)


for _name, _help in (("knn-image", "kNN over the frozen backbone's pooled image vectors"),
                     ("knn-patch", "kNN over the frozen backbone's patch vectors (PatchCore-like)"),
                     ("knn-contrast", "knn-patch weighed by how much more an image resembles the defects than the "
                                      "goods"),
                     ("knn-open-set", "good-only patch residual x (d_good / d_defect) ** w, w chosen out of fold (0: "
                                      "the residual)"),
                     ("triplet-ae", "kNN over a triplet-loss autoencoder trained on each fold's training part"),
                     ("triplet-head", "kNN over a triplet-loss head on the frozen backbone, trained per fold")):
    register_baseline(_name, _builder(_name), family="similarity", load=_load, help=_help)(BUILDERS[_name])
