"""triplet-patch as a compared method: a patch-level triplet head trained on the fold's own training part, then
defect-aware patch kNN with it (goods as good exemplars, defects as defect exemplars down to their patches).

Per fold, nothing of the test part is seen: `fit` trains the head on the training samples with early stopping
on the loss of a validation part carved from them (`validation_split`), indexes the whole training part, and
places the threshold on its leave-one-out scores (`similarity.set_out_of_fold_threshold`). With
no labelled defect to learn from it is exactly the frozen backbone's defect-aware patch kNN (knn-patch)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from simsearch.baselines.persist import write_baseline
from simsearch.baselines.registry import register_baseline
from simsearch.baselines.similarity import InspectorScorer, set_out_of_fold_threshold
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from simsearch.data.splits import DEFAULT_SEED, validation_split
from simsearch.embed import Embedder, embedder_from_config
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.triplet_head import HeadConfig, TripletHeadEmbedder
from simsearch.errors import InputError
from simsearch.inspector import Inspector
from simsearch.runtime import DEFAULT_BATCH_SIZE, Runtime
from simsearch.train.loop import TrainSettings
from simsearch.train.tasks.triplet_head import PATCH_FEATURES, train_triplet_head

NAME = "triplet-patch"
VAL_FRACTION = 0.2  # of the training part: the head's validation loss and the threshold's calibration set
PATIENCE = 3  # epochs without a lower validation loss before training stops
INDEX_FOLDER, HEAD_FILE = "index", "head.pt"


class TripletPatchScorer(InspectorScorer):
    """A patch-level triplet head on a frozen backbone, trained per fit, with a defect-aware patch index."""

    name = NAME
    family = "similarity"

    def __init__(self, backbone: str = "resnet18", weights: str | Path | None = None, image_size: int = 224,
                 epochs: int = 10, seed: int = DEFAULT_SEED, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str | None = None, pretrained: bool = True, k: int = 1, coreset_ratio: float = 0.1,
                 val_fraction: float = VAL_FRACTION, patience: int | None = PATIENCE, mode: str = "patch",
                 joined: bool = True, callbacks: Callbacks | None = None):
        self.mode = mode  # a scoring mode with a patch bank: "patch" or "contrast"
        self.joined = joined  # the backbone's patch vectors beside the head's (HeadConfig.joined)
        self.backbone, self.weights, self.image_size = backbone, weights, image_size
        self.epochs, self.seed, self.batch_size, self.device = epochs, seed, batch_size, device
        self.pretrained, self.k, self.coreset_ratio = pretrained, k, coreset_ratio
        self.val_fraction, self.patience = val_fraction, patience
        self.callbacks = callbacks or Callbacks()
        self.inspector_: Inspector | None = None
        self.head_checkpoint_: Path | None = None  # None: no head was learned (no labelled defects)
        self.best_epoch_: int | None = None
        self.train_paths_: list[str] = []  # what the head and the index saw (tests assert no test image)
        self._work: tempfile.TemporaryDirectory | None = None

    def _backbone(self) -> BackboneEmbedder:
        return BackboneEmbedder(self.backbone, image_size=self.image_size, weights=self.weights,
                                pretrained=self.pretrained, batch_size=self.batch_size, device=self.device)

    def fit(self, samples: Sequence[Sample]) -> "TripletPatchScorer":
        """Train the head (when there are defects; its early stopping on a validation part it carves), index
        the whole training part, and place the threshold on its leave-one-out scores."""
        samples = list(samples)
        train, _ = validation_split(samples, self.val_fraction, self.seed)
        self.train_paths_ = [str(s.path) for s in samples]
        backbone = self._backbone()
        embedder: Embedder = backbone
        if any(s.is_defect for s in train) and self.epochs > 0:
            # the run folder lives as long as this scorer (its embedder names the checkpoint there; `save`
            # copies it out), then goes: a compare run fits one scorer per fold and method
            self._work = tempfile.TemporaryDirectory(prefix=f"simsearch-{NAME}-")
            work = Path(self._work.name)
            # the same validation_split (fraction, seed) inside: the head validates on exactly `val`
            settings = TrainSettings(epochs=self.epochs, seed=self.seed, device=self.device,
                                     val_fraction=self.val_fraction, patience=self.patience)
            head = HeadConfig(level="patch", joined=self.joined)
            result = train_triplet_head(samples, backbone, work / "run", head, settings)
            self.head_checkpoint_, self.best_epoch_ = result.model_path, result.best_epoch
            (work / "run" / PATCH_FEATURES).unlink(missing_ok=True)  # the cached grids: hundreds of MB at 224 px
            embedder = TripletHeadEmbedder(result.model_path, weights=self.weights, batch_size=self.batch_size,
                                           device=self.device)
        else:
            self.callbacks.note(f"{NAME}: no labelled defects to learn from; the frozen backbone scores alone")
        self.inspector_ = Inspector(embedder, mode=self.mode, k=self.k, coreset_ratio=self.coreset_ratio)
        self.inspector_.fit(samples)
        set_out_of_fold_threshold(self, samples)
        return self

    def describe(self) -> dict[str, Any]:
        threshold = self.threshold_
        return {"scorer": self.name, "family": self.family, "learned_head": self.head_checkpoint_ is not None,
                "best_epoch": self.best_epoch_, "threshold": threshold.to_record() if threshold else None}

    def save(self, folder: str | Path) -> None:
        """folder/head.pt (the head's checkpoint, when one was learned), folder/index, baseline.json."""
        inspector = self._require()
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        head = None
        if self.head_checkpoint_ is not None:
            head = folder / HEAD_FILE
            if Path(self.head_checkpoint_).resolve() != head:
                shutil.copyfile(self.head_checkpoint_, head)
            inspector.index_.embedder_config["weights_path"] = str(head)  # the copy the index goes with
        inspector.save(folder / INDEX_FOLDER, force=True)
        # named relative to the folder (read back by read_baseline): the saved method can be moved or copied
        files = {"index": INDEX_FOLDER, **({"head": HEAD_FILE} if head else {})}
        config = {"kind": NAME, "files": files,
                  "backbone": self._backbone_config(inspector), "fingerprint": inspector.embedder.fingerprint,
                  "best_epoch": self.best_epoch_, "train_paths": len(self.train_paths_)}
        write_baseline(folder, config, {"saved": torch.zeros(1)})  # the model lives in head.pt and the index

    @staticmethod
    def _backbone_config(inspector: Inspector) -> dict[str, Any]:
        config = inspector.embedder.config
        return config.get("backbone", config) if config.get("kind") != "backbone" else config

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, **runtime: Any) -> "TripletPatchScorer":
        from simsearch.baselines.persist import load_baseline

        return load_baseline(folder, weights, **runtime)  # checks baseline.json and resolves its files

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], weights: str | Path | None = None,
                   batch_size: int | None = None, device: str | None = None) -> "TripletPatchScorer":
        """The saved head (or frozen backbone) and its index; `weights`: the backbone's moved weights file."""
        runtime = Runtime.of(batch_size=batch_size, device=device).embedder_options()
        files = config.get("files") or {"index": config.get("index"), "head": config.get("head")}  # older saves
        head = files.get("head")
        if head:
            embedder: Embedder = TripletHeadEmbedder(head, weights=weights, **runtime)
        else:
            embedder = embedder_from_config(config["backbone"], weights=weights, **runtime)
        scorer = cls()
        scorer.inspector_ = Inspector.load(files["index"], embedder=embedder)
        scorer.head_checkpoint_ = Path(head) if head else None
        scorer.best_epoch_ = config.get("best_epoch")
        return scorer


def build(settings: Any, callbacks: Callbacks | None = None) -> TripletPatchScorer:
    """From compare's CompareSettings (val_fraction and options read where present)."""
    options = (getattr(settings, "options", None) or {}).get(NAME, {})  # --option triplet-patch.NAME=VALUE
    joined = options.get("joined", True)
    if not isinstance(joined, bool):
        raise InputError(f"{NAME}.joined is {joined!r}, not true or false", parameter="option",
                         hint=f"pass {{param}} {NAME}.joined=true or {NAME}.joined=false")
    return TripletPatchScorer(
        backbone=settings.backbone, weights=settings.weights, image_size=settings.image_size,
        epochs=int(options.get("epochs", settings.epochs)), seed=settings.seed, batch_size=settings.batch_size,
        device=settings.device,
        pretrained=getattr(settings, "pretrained", True), k=getattr(settings, "k", 1),
        coreset_ratio=getattr(settings, "coreset_ratio", 0.1),
        val_fraction=getattr(settings, "val_fraction", VAL_FRACTION),
        patience=options.get("patience", getattr(settings, "patience", PATIENCE)),
        mode=str(options.get("mode", "patch")),
        joined=joined, callbacks=callbacks)


register_baseline(NAME, build, family="similarity",
                  help="patch-level triplet head trained per fold + defect-aware patch kNN (frozen without defects)")(
    TripletPatchScorer)
