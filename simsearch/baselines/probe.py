"""Backbone probe (seed 003): embed every image once per pretrained backbone (cached on disk), train a light
linear head on each, keep the backbone with the best out-of-fold F1 on the training part (ties to the
smallest model); the threshold is placed on the same out-of-fold scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torchvision
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from simsearch.baselines.persist import SavedBaseline, write_baseline
from simsearch.baselines.registry import register_baseline
from simsearch.baselines.thresholds import OUT_OF_FOLD, basis, out_of_fold_predictions, place_threshold
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from simsearch.data.images import ImageLike, read_image
from simsearch.data.inputs import expand_inputs, iter_items
from simsearch.data.splits import DEFAULT_SEED
from simsearch.data.transforms import ImageSize
from simsearch.decide.threshold import probability_threshold
from simsearch.embed import Embedder, create_embedder, embedder_from_config
from simsearch.embed.weights import WeightsError
from simsearch.errors import InputError, NotFittedError
from simsearch.files import file_sha256
from simsearch.runtime import DEFAULT_BATCH_SIZE, Runtime
from simsearch.score.results import ScoreResult

# Small to large, as seed 003 ranks ties by model size.
DEFAULT_BACKBONES = ("mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet50", "convnext_tiny", "vgg16")
DEFAULT_CACHE = Path("artifacts/cache/probe")


def is_resnet(name: str) -> bool:
    return name.startswith(("resnet", "wide_resnet", "resnext"))


def model_size(name: str) -> int:
    """Parameter count of the full torchvision model (for ties), from its weights' metadata."""
    try:
        return int(torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"])
    except (ValueError, KeyError, AttributeError):
        return 1 << 62


def build_probe_embedder(name: str, image_size: ImageSize = 224, weights: str | Path | None = None,
                         **runtime: Any) -> Embedder:
    """ResNets: layer2+layer3 pooled vectors (the kNN embedder); other torchvision models: features + pooling."""
    if is_resnet(name):
        return create_embedder(f"backbone:{name}", weights=weights, image_size=image_size, **runtime)
    if weights is not None:
        raise WeightsError(f"weights files are only read for ResNet backbones, not {name}", hint="leave {param} out",
                           parameter="weights")
    from simsearch.embed.pooled import PooledEmbedder
    return PooledEmbedder(name, image_size, **runtime)


class EmbeddingCache:
    """Image vectors per embedder fingerprint, keyed by file sha256, in one .npz per embedder."""

    def __init__(self, folder: str | Path | None = DEFAULT_CACHE):
        self.folder = Path(folder) if folder is not None else None

    def vectors(self, embedder: Embedder, paths: Sequence[Path], callbacks: Callbacks | None = None) -> np.ndarray:
        """(N, D) vectors for image files, computing only those not cached yet."""
        hashes = [file_sha256(p) for p in paths]
        stored: dict[str, np.ndarray] = {}
        file = self.folder / f"{embedder.config.get('backbone', 'embedder')}-{embedder.fingerprint}.npz" \
            if self.folder is not None else None
        if file is not None and file.is_file():
            with np.load(file, allow_pickle=False) as data:
                stored = dict(zip(data["sha256"].tolist(), data["vectors"]))
        missing = [i for i, h in enumerate(hashes) if h not in stored]
        for start in range(0, len(missing), embedder.batch_size):
            rows = missing[start:start + embedder.batch_size]
            vectors = embedder.embed([read_image(paths[i]) for i in rows]).image
            stored.update({hashes[i]: v for i, v in zip(rows, vectors)})
            (callbacks or Callbacks()).progress(len(rows))
        if file is not None and missing:
            file.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(stored)
            temporary = file.with_suffix(".tmp.npz")
            np.savez(temporary, sha256=np.array(keys), vectors=np.stack([stored[k] for k in keys]))
            temporary.replace(file)
        return np.stack([stored[h] for h in hashes]).astype(np.float32)


@dataclass
class LinearHead:
    """Standardisation + logistic regression, kept as plain arrays so it saves as tensors."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, class_weights: Sequence[float], seed: int) -> "LinearHead":
        scaler = StandardScaler().fit(vectors)
        model = LogisticRegression(max_iter=5000, class_weight={0: class_weights[0], 1: class_weights[1]},
                                   random_state=seed).fit(scaler.transform(vectors), labels)
        return cls(scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]))

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """Defect probability per row."""
        logits = ((vectors - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))


def build_probe(options: Any, callbacks: Callbacks | None = None) -> "BackboneProbe":
    """The probe from CompareSettings: its candidate backbones, the shared weights file for --backbone."""
    weights = {options.backbone: options.weights} if options.weights else {}
    runtime = Runtime.of(batch_size=options.batch_size, device=options.device).embedder_options()
    return BackboneProbe(options.probe_backbones, weights, options.image_size,
                         class_weights=options.class_weights,
                         seed=options.seed, cache_dir=options.cache_dir, pretrained=options.pretrained,
                         callbacks=callbacks, **runtime)


@register_baseline("probe", build_probe, help="linear head on the best of several pretrained backbones (seed 003)")
class BackboneProbe(SavedBaseline):
    """Pick the pretrained backbone whose cached embeddings a linear head separates best; score with it."""

    name = "probe"

    def __init__(self, backbones: Sequence[str] = DEFAULT_BACKBONES, weights: dict[str, str | Path] | None = None,
                 image_size: ImageSize = 224, class_weights: Sequence[float] = (1.0, 3.0),
                 threshold: float = 0.5, seed: int = DEFAULT_SEED, cache_dir: str | Path | None = DEFAULT_CACHE,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None, pretrained: bool = True,
                 callbacks: Callbacks | None = None):
        self.backbones = tuple(backbones)
        self.weights = dict(weights or {})
        self.image_size = image_size
        self.class_weights = tuple(class_weights)
        self.threshold = threshold
        self.seed = seed
        self.cache = EmbeddingCache(cache_dir)
        self.batch_size = batch_size
        self.device = device
        self.pretrained = pretrained  # False: random ResNets, for tests only
        self.callbacks = callbacks or Callbacks()  # notes: each backbone skipped for want of weights
        self.embedder_: Embedder | None = None
        self.head_: LinearHead | None = None
        self.candidates_: list[dict] = []
        self.notes_: list[str] = []
        self.threshold_basis_: str | None = None  # e.g. "out-of-fold f1"
        self.threshold_paths_: list[str] = []  # the training images whose out-of-fold scores placed it

    def _embedders(self, callbacks: Callbacks) -> Iterator[tuple[str, Embedder]]:
        runtime = Runtime.of(batch_size=self.batch_size, device=self.device).embedder_options()
        for name in self.backbones:
            try:
                extra = {"pretrained": False} if not self.pretrained and is_resnet(name) else {}
                yield name, build_probe_embedder(name, self.image_size, self.weights.get(name), **runtime, **extra)
            except WeightsError as error:
                note = f"probe skipped {name}: {error}"
                self.notes_.append(note)
                callbacks.note(note)

    def fit(self, samples: Sequence[Sample], callbacks: Callbacks | None = None) -> "BackboneProbe":
        """Embed the training samples with each backbone; score each of them with a head fitted on the other
        internal folds (`thresholds.out_of_fold_predictions`, 3 folds), choose the backbone by the F1 of those
        out-of-fold scores at the threshold they place (`place_threshold`: F1-best, or good-only with too few
        defects), then fit the head on every sample. `callbacks`: instead of the ones it was built with."""
        callbacks = callbacks or self.callbacks
        self.notes_, self.candidates_ = [], []
        samples = list(samples)
        labels = np.array([int(s.is_defect) for s in samples])
        if int(labels.sum()) < 1 or int((labels == 0).sum()) < 1:
            raise InputError("the probe needs good and defect images to train on",
                             hint="label at least one defect image", parameter="samples")
        best = None
        for name, embedder in self._embedders(callbacks):
            vectors = self.cache.vectors(embedder, [s.path for s in samples], callbacks)

            def fit_predict(fit_rows: np.ndarray, held_rows: np.ndarray, vectors: np.ndarray = vectors) -> np.ndarray:
                head = LinearHead.fit(vectors[fit_rows], labels[fit_rows], self.class_weights, self.seed)
                return head.predict_proba(vectors[held_rows])
            rows, probabilities = out_of_fold_predictions(labels, fit_predict, seed=self.seed)
            placed = place_threshold(labels[rows], probabilities, OUT_OF_FOLD)
            threshold = 0.5 if placed is None else placed.value
            f1 = float(f1_score(labels[rows], probabilities >= threshold, zero_division=0)) if len(rows) else 0.0
            self.candidates_.append({"backbone": name, "out_of_fold_f1": round(f1, 6), "params": model_size(name),
                                     "dim": embedder.dim, "threshold": threshold,
                                     "threshold_basis": basis(placed, OUT_OF_FOLD)})
            key = (-f1, model_size(name))
            if best is None or key < best[0]:
                best = (key, embedder, vectors, threshold, basis(placed, OUT_OF_FOLD), [samples[i].path for i in rows])
        if best is None:
            raise WeightsError("the probe found no backbone with usable weights: " + "; ".join(self.notes_))
        _, self.embedder_, vectors, self.threshold, self.threshold_basis_, paths = best
        self.threshold_paths_ = [str(p) for p in paths]
        self.head_ = LinearHead.fit(vectors, labels, self.class_weights, self.seed)
        return self

    @property
    def is_fitted(self) -> bool:
        return self.embedder_ is not None and self.head_ is not None

    def describe(self) -> dict[str, Any]:
        """The set-up: the chosen backbone and embedder, the candidates tried, the threshold."""
        return {"scorer": self.name, "family": self.family, "backbone": self.backbone_,
                "embedder": self.embedder_.config if self.embedder_ is not None else None,
                "candidates": self.candidates_, "notes": self.notes_,
                "threshold": probability_threshold(self.threshold).to_record()}

    @property
    def backbone_(self) -> str | None:
        return self.embedder_.config.get("backbone") if self.embedder_ is not None else None

    def iter_score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
                   maps: str = "all") -> Iterator[ScoreResult]:
        """Defect probability per image from the chosen backbone and head (no maps: `maps` changes nothing)."""
        if self.embedder_ is None or self.head_ is None:
            raise NotFittedError("this probe is not trained: call fit() or load_baseline()")
        callbacks = callbacks or Callbacks()
        batch = []
        items = iter_items(expand_inputs(images), callbacks)
        while True:
            batch = [item for _, item in zip(range(self.embedder_.batch_size), items)]
            if not batch:
                return
            probabilities = self.head_.predict_proba(self.embedder_.embed([i.pixels for i in batch]).image)
            threshold = probability_threshold(self.threshold)
            for item, probability in zip(batch, probabilities):
                normalised, rejected = threshold.verdict(float(probability))
                yield ScoreResult(path=item.path, score=float(probability), nearest=[], normalised_score=normalised,
                                  is_anomaly=rejected, image_size=item.pixels.shape[:2])
            callbacks.progress(len(batch))

    def save(self, folder: str | Path) -> None:
        """Write the head as tensors and the chosen embedder's config (its weights stay where they are)."""
        if self.embedder_ is None or self.head_ is None:
            raise NotFittedError("this probe is not trained")
        head = self.head_
        tensors = {"mean": torch.from_numpy(np.asarray(head.mean, dtype=np.float64)),
                   "scale": torch.from_numpy(np.asarray(head.scale, dtype=np.float64)),
                   "coef": torch.from_numpy(np.asarray(head.coef, dtype=np.float64)),
                   "intercept": torch.tensor([head.intercept], dtype=torch.float64)}
        write_baseline(folder, {"kind": "probe", "embedder": self.embedder_.config,
                                "fingerprint": self.embedder_.fingerprint, "threshold": self.threshold,
                                "candidates": self.candidates_, "notes": self.notes_}, tensors)

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], weights: str | Path | None = None,
                   batch_size: int | None = None, device: str | None = None) -> "BackboneProbe":
        """Rebuild from baseline.json and model.pt; the backbone's weights are read again (weights: its file)."""
        runtime = Runtime.of(batch_size=batch_size, device=device).embedder_options()
        embedder_config = config["embedder"]
        if embedder_config.get("kind") == "pooled":
            from simsearch.embed.pooled import PooledEmbedder
            embedder = PooledEmbedder.from_config(embedder_config, **runtime)
        else:
            embedder = embedder_from_config(embedder_config, weights=weights, **runtime)
        if embedder.fingerprint != config.get("fingerprint"):
            raise WeightsError("the probe's backbone now gives other vectors than when it was trained "
                               "(other weights?): retrain it")
        probe = cls([embedder_config.get("backbone", "?")], threshold=config.get("threshold", 0.5), cache_dir=None)
        probe.embedder_ = embedder
        probe.head_ = LinearHead(tensors["mean"].numpy(), tensors["scale"].numpy(), tensors["coef"].numpy(),
                                 float(tensors["intercept"][0]))
        probe.candidates_, probe.notes_ = config.get("candidates", []), config.get("notes", [])
        return probe
