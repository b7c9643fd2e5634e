"""Train and run the CNN and CAM baselines on images; they score like an Inspector (one ScoreResult per image,
score = defect probability, boxes from the class activation map)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from simsearch.baselines.cam import class_activation_maps, map_to_box, upsample_map
from simsearch.baselines.models import CamClassifier, SmallCNN
from simsearch.baselines.persist import SavedBaseline, write_baseline
from simsearch.baselines.registry import register_baseline
from simsearch.baselines.thresholds import CARVE_OUT, FIXED, basis, place_threshold
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from simsearch.data.images import ImageLike
from simsearch.data.inputs import expand_inputs, iter_items
from simsearch.data.splits import validation_split
from simsearch.data.transforms import ImageSize, size_config, size_text
from simsearch.decide.threshold import probability_threshold
from simsearch.embed.backbone import checked_size
from simsearch.embed.base import tensor_digest
from simsearch.embed.weights import WeightsError, read_state_dict, torchvision_state_dict
from simsearch.errors import InputError, NotFittedError, UnknownComponentError
from simsearch.files import file_sha256
from simsearch.runtime import DEFAULT_BATCH_SIZE, Runtime
from simsearch.score.results import ScoreResult
from simsearch.train.classifier import EpochCallback, TrainConfig, to_pixels, train_classifier

KINDS = ("cnn", "cam")
DEFAULT_SIZE = {"cnn": 128, "cam": 224}


def load_backbone_weights(model: CamClassifier, weights: str | Path | None = None) -> str:
    """Put ImageNet weights into a CAM model's backbone (a state-dict file, else torchvision's cache/download);
    returns where they came from. Raises WeightsError naming what is missing."""
    if weights is not None:
        state, source = read_state_dict(weights), f"file:{file_sha256(weights)}"
    else:
        state, source = torchvision_state_dict(model.backbone)
    mapping = {own: theirs for own, theirs in model.backbone_state_keys().items()
               if not own.endswith("num_batches_tracked")}
    missing = sorted(theirs for theirs in mapping.values() if theirs not in state)
    if missing:
        raise WeightsError(f"{weights or source} lacks {len(missing)} tensor(s) the {model.backbone} CAM model "
                           f"needs, e.g. {missing[0]}", hint="check {param}", parameter="backbone")
    current = model.state_dict()
    for own, theirs in mapping.items():
        if tuple(state[theirs].shape) != tuple(current[own].shape):
            raise WeightsError(f"{weights or source}: {theirs} has shape {tuple(state[theirs].shape)}, "
                               f"expected {tuple(current[own].shape)}", hint="check {param}", parameter="backbone")
    model.load_state_dict({own: state[theirs] for own, theirs in mapping.items()}, strict=False)
    return source


def build_cnn(options: Any, callbacks: Callbacks | None = None) -> "ImageClassifier":
    """Seed 000's small CNN from CompareSettings (its own image size and learning rate)."""
    return ImageClassifier("cnn", options.cnn_image_size, options.backbone, options.weights, options.pretrained,
                           options.train_config("cnn"), **_runtime(options), callbacks=callbacks)


def build_cam(options: Any, callbacks: Callbacks | None = None) -> "ImageClassifier":
    """Seeds 001/002's CAM classifier from CompareSettings (the shared backbone, weights and image size)."""
    return ImageClassifier("cam", options.image_size, options.backbone, options.weights, options.pretrained,
                           options.train_config("cam"), **_runtime(options), callbacks=callbacks)


def _runtime(options: Any) -> dict[str, Any]:
    return {**Runtime.of(batch_size=options.batch_size, device=options.device).embedder_options(),
            "val_fraction": options.val_fraction, "patience": options.patience}


@register_baseline("cam", build_cam, help="fine-tuned backbone with class activation map boxes (seeds 001/002)")
@register_baseline("cnn", build_cnn, help="small CNN trained from scratch (seed 000)")
class ImageClassifier(SavedBaseline):
    """A supervised good/defect classifier: kind 'cnn' (seed 000) or 'cam' (seeds 001/002)."""

    def __init__(self, kind: str = "cnn", image_size: ImageSize | None = None, backbone: str = "resnet18",
                 weights: str | Path | None = None, pretrained: bool = True, train: TrainConfig | None = None,
                 threshold: float = 0.5, batch_size: int = DEFAULT_BATCH_SIZE, device: str | torch.device | None = None,
                 val_fraction: float = 0.2, patience: int | None = 3, callbacks: Callbacks | None = None):
        if kind not in KINDS:
            raise UnknownComponentError(f"classifier kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.kind = kind
        self.image_size = checked_size(image_size or DEFAULT_SIZE[kind])
        if kind == "cnn" and not isinstance(self.image_size, int):  # its dense layer is sized for a square
            raise InputError(f"the small CNN takes square images, not {size_text(self.image_size)}",
                             hint="give {param} one side", parameter="cnn_image_size")
        self.backbone = backbone
        self.weights = weights
        self.pretrained = pretrained
        self.train = train or TrainConfig()
        self.threshold = threshold
        self.batch_size = batch_size
        self.device = torch.device(device or "cpu")
        self.val_fraction = val_fraction  # share of the training samples held out to pick epoch and threshold
        self.patience = patience
        self.callbacks = callbacks or Callbacks()
        self.model_: torch.nn.Module | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.weights_source_: str | None = None
        self.threshold_basis_ = f"{FIXED} {threshold:g}"  # where the threshold was placed (compare shows it)
        self.threshold_paths_: list[str] = []  # the validation images whose scores placed it

    def _build(self) -> torch.nn.Module:
        torch.manual_seed(self.train.seed)
        if self.kind == "cnn":
            self.weights_source_ = f"random:seed{self.train.seed}"
            return SmallCNN(self.image_size)
        model = CamClassifier(self.backbone)
        if self.weights is not None or self.pretrained:
            self.weights_source_ = load_backbone_weights(model, self.weights)
        else:
            self.weights_source_ = f"random:seed{self.train.seed}"
        for parameter in model.frozen.parameters():  # only the last conv block and the head learn
            parameter.requires_grad = False
        return model

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.kind

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    def fit(self, samples: Sequence[Sample], on_epoch: EpochCallback | None = None) -> "ImageClassifier":
        """Train on labelled samples (defect types only stratify the split): a validation part carved from them
        (val_fraction, stratified) picks the best epoch, stops early and places the threshold."""
        train, held = validation_split(samples, self.val_fraction, self.train.seed)
        held_labels = {s.is_defect for s in held}
        if held and held_labels != {True, False} or not {s.is_defect for s in train} >= {True, False}:
            # Too few defects to spare some: train on everything, keep the last epoch and threshold 0.5.
            self.callbacks.note(f"{self.kind}: too few defects to hold out a validation part with both classes; "
                                "trained on every sample for the full epochs, threshold 0.5")
            train, held = list(samples), []
        return self.fit_images([s.path for s in train], [int(s.is_defect) for s in train], on_epoch,
                               [s.path for s in held], [int(s.is_defect) for s in held])

    def fit_images(self, images: Sequence[ImageLike], labels: Sequence[int], on_epoch: EpochCallback | None = None,
                   val_images: Sequence[ImageLike] = (), val_labels: Sequence[int] = ()) -> "ImageClassifier":
        """Train on images with labels 0 (good) / 1 (defect); with validation images, keep the epoch of lowest
        validation loss and place the threshold on their scores (`place_threshold`: F1-best, or good-only with
        too few validation defects)."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if len(labels) != len(images) or len(set(labels.tolist())) < 2:
            raise InputError("training needs images of both classes (good and defect), one label per image",
                             hint="label at least one defect image", parameter="samples")
        model = self._build().to(self.device)
        pixels = to_pixels(images, self.image_size).to(self.device)
        frozen = model.frozen if isinstance(model, CamClassifier) else None
        validation = None
        if len(val_images):
            validation = (to_pixels(val_images, self.image_size).to(self.device),
                          torch.as_tensor(np.asarray(val_labels, dtype=np.int64)).to(self.device))
        self.history_ = train_classifier(model, pixels, labels.to(self.device), self.train, on_epoch, frozen,
                                         validation, self.patience)
        self.model_ = model
        self.best_epoch_ = None
        if validation is not None:
            losses = [row["val_loss"] for row in self.history_]
            self.best_epoch_ = self.history_[int(np.argmin(losses))]["epoch"]  # the first lowest, as the loop keeps
            probabilities = [r.score for r in self.score(list(val_images))]
            # A full training run per internal fold would cost K runs: the carve-out stays (its basis says so).
            placed = place_threshold(np.asarray(val_labels), np.asarray(probabilities), CARVE_OUT)
            self.threshold = placed.value if placed is not None else 0.5
            self.threshold_basis_ = basis(placed, CARVE_OUT)
            self.threshold_paths_ = [str(p) for p in val_images]
        return self

    def _require_model(self) -> torch.nn.Module:
        if self.model_ is None:
            raise NotFittedError("this classifier is not trained: call fit() or load_baseline()")
        return self.model_

    def _score_batch(self, items: list) -> list[ScoreResult]:
        model = self._require_model()
        pixels = to_pixels([i.pixels for i in items], self.image_size).to(self.device)
        with torch.inference_mode():
            probabilities = torch.softmax(model(pixels), dim=1)[:, 1].cpu().numpy()
            maps = class_activation_maps(model, pixels).cpu().numpy() if self.kind == "cam" else None
        results, threshold = [], probability_threshold(self.threshold)
        for row, item in enumerate(items):
            probability = float(probabilities[row])
            normalised, rejected = threshold.verdict(probability)
            result = ScoreResult(path=item.path, score=probability, nearest=[], normalised_score=normalised,
                                 is_anomaly=rejected, image_size=item.pixels.shape[:2])
            if maps is not None:
                result.patch_map = maps[row]
                box = map_to_box(upsample_map(maps[row], item.pixels.shape[:2])) if result.is_anomaly else None
                result.boxes = [box] if box is not None else []
            results.append(result)
        return results

    def iter_score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
                   maps: str = "all") -> Iterator[ScoreResult]:
        """Score images in batches: defect probability, verdict at the threshold, and CAM box (kind 'cam'); the
        CAM comes with the forward pass, so every image keeps its map whatever `maps` asks."""
        callbacks = callbacks or Callbacks()
        batch = []
        for item in iter_items(expand_inputs(images), callbacks):
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self._score_batch(batch)
                callbacks.progress(len(batch))
                batch = []
        if batch:
            yield from self._score_batch(batch)
            callbacks.progress(len(batch))

    def predict_proba(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """(N, 2) class probabilities, good then defect."""
        defect = np.array([r.score for r in self.score(images)])
        return np.stack([1 - defect, defect], axis=1)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "image_size": size_config(self.image_size),
                "backbone": self.backbone if self.kind == "cam" else None, "threshold": self.threshold,
                "weights_source": self.weights_source_,
                "train": self.train.to_dict(), "val_fraction": self.val_fraction, "patience": self.patience,
                "best_epoch": self.best_epoch_, "history": self.history_}

    def describe(self) -> dict[str, Any]:
        """The set-up from the saved config (the training history left out)."""
        config = {k: v for k, v in self.config().items() if k != "history"}
        return {"scorer": self.name, "family": self.family, **config,
                "threshold": probability_threshold(self.threshold).to_record()}

    def save(self, folder: str | Path) -> None:
        """Write model.pt + baseline.json; the saved model needs no backbone weights file to load."""
        state = self._require_model().state_dict()
        write_baseline(folder, {**self.config(), "digest": tensor_digest(state)}, state)

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], weights: str | Path | None = None,
                   batch_size: int | None = None, device: str | None = None) -> "ImageClassifier":
        """Rebuild from baseline.json and model.pt (weights is unused: model.pt holds every tensor)."""
        train = {k: v for k, v in config.get("train", {}).items() if k in TrainConfig.__dataclass_fields__}
        if "class_weights" in train:
            train["class_weights"] = tuple(train["class_weights"])
        classifier = cls(config["kind"], config["image_size"], config.get("backbone") or "resnet18",
                         pretrained=False, train=TrainConfig(**train), threshold=config.get("threshold", 0.5),
                         batch_size=batch_size or DEFAULT_BATCH_SIZE, device=device)
        model = SmallCNN(classifier.image_size) if classifier.kind == "cnn" else CamClassifier(classifier.backbone)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as error:
            raise WeightsError(f"saved model does not fit its config: {str(error).splitlines()[0]}") from None
        classifier.model_ = model.eval().to(classifier.device)
        classifier.weights_source_ = config.get("weights_source")
        classifier.history_ = config.get("history", [])
        classifier.best_epoch_ = config.get("best_epoch")
        return classifier
