"""Train a projection head on a frozen backbone with the triplet loss: metric learning on pretrained features.

The backbone never changes, so its vectors are computed once and cached in the run's folder; epochs then take
seconds. At the image level (HeadConfig.level "image") the head learns on pooled image vectors, one per image
and view (the original and `views - 1` augmented copies). At the patch level ("patch") it learns on patch
vectors, from image-level labels: a good image's patches are all good; a defect image holds some defect
patches, taken to be those its mask marks or else those least like the good images' patches (hard
negatives); the good patches least like the other good images' patches come in as hard positives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample, class_ids
from simsearch.data.images import patch_mask
from simsearch.data.roi import apply_roi
from simsearch.data.splits import validation_split
from simsearch.data.transforms import to_uint8_arrays, to_unit_tensor
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.triplet_head import HeadConfig
from simsearch.errors import TrainingError
from simsearch.runtime import resolve_device
from simsearch.train.augment import InspectionAugment
from simsearch.train.loop import OnEvent, TrainResult, TrainSettings, run_training
from simsearch.train.tasks.common import (
    TripletObjective,
    TripletOptions,
    balanced_batches,
    read_samples,
    with_splits,
)

KIND = "triplet-head"
FEATURES = "features.pt"
PATCH_FEATURES = "patch_features.pt"
PATCHES_PER_GOOD = 32  # random patches drawn from each good image, beside its hard ones
HARD_FRACTION = 0.05  # per image, the share of patches least like the good bank (as the index's defect patches)
MINING_BANK = 8_000  # good patches the mining compares with (a random draw: exact search stays fast)
PATCH_BATCH = 128  # patch-level batches: many patches per class, so batch-hard mining finds hard ones
JOIN_SAMPLE = 2_000  # good training patches that measure a joined head's scales


def view_vectors(backbone: BackboneEmbedder, image: np.ndarray, views: int, augment: InspectionAugment,
                 generator: torch.Generator, roi: str | None = None) -> torch.Tensor:
    """Backbone image vectors (views, D) of an image: as it is, then `views - 1` augmented copies."""
    image = apply_roi(image, roi)
    copies = [image]
    if views > 1:
        pixels = to_unit_tensor([image], max(image.shape[:2]), channels=3).expand(views - 1, -1, -1, -1)
        copies += to_uint8_arrays(augment(pixels, generator))
    return torch.from_numpy(backbone.embed(copies).image)


class HeadTask:
    """Cached backbone vectors; each batch draws one cached view per image."""

    kind = KIND

    def __init__(self, head_config: HeadConfig, settings: TrainSettings, train_vectors: torch.Tensor,
                 train_labels: Sequence[int], val_vectors: torch.Tensor | None, val_labels: Sequence[int],
                 triplet: TripletOptions | None = None, join_sample: torch.Tensor | None = None):
        self.head_config, self.settings = head_config, settings
        self.join_sample = join_sample  # good patch vectors that set a joined head's scales (each epoch)
        self.device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        self.model = head_config.build()
        self.model.set_standardisation(train_vectors[:, 0])
        self.model.to(self.device)
        self.objective = TripletObjective(triplet)
        self.train_vectors, self.train_labels = train_vectors, torch.tensor(list(train_labels))
        self.sampler = balanced_batches(list(train_labels), settings, settings.seed)
        self._val = []
        if val_vectors is not None and len(set(val_labels)) > 1:
            sampler = balanced_batches(list(val_labels), settings, settings.seed + 1)
            labels = torch.tensor(list(val_labels))
            self._val = [(val_vectors[rows, 0], labels[rows]) for rows in sampler]

    def config(self) -> dict[str, Any]:
        return asdict(self.head_config)

    def train_batches(self, epoch: int) -> list:
        self.sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.settings.seed * 100_003 + epoch)
        batches = []
        for rows in self.sampler:
            view = torch.randint(self.train_vectors.shape[1], (len(rows),), generator=generator)
            batches.append((self.train_vectors[rows, view], self.train_labels[rows]))
        return batches

    def val_batches(self) -> list:
        return self._val

    def before_validation(self) -> None:
        """A joined head's scales follow its weights: measured after every epoch, so each checkpoint has its own."""
        if self.head_config.joined:
            self.model.set_join_scales(self.join_sample.to(self.device))

    def losses(self, batch) -> dict[str, torch.Tensor]:
        vectors, labels = batch
        loss = self.objective(self.model(vectors.to(self.device)), labels.to(self.device))
        return {"loss": loss}


def _cached(samples: Sequence[Sample], key_parts: list, cache: Path, field: str,
            read: Callable[[np.ndarray], torch.Tensor],
            callbacks: Callbacks | None) -> tuple[list[Sample], torch.Tensor]:
    """(kept samples, stacked tensors under `field`), reused from `cache` when it was made from the same inputs
    (`key_parts` plus the sample paths); else each sample read through `read`, then saved there."""
    key = hashlib.sha256(json.dumps([*key_parts, [str(s.path) for s in samples]]).encode()).hexdigest()
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            by_path = {str(s.path): s for s in samples}
            (callbacks or Callbacks()).progress(len(samples))
            return [by_path[p] for p in stored["paths"]], stored[field]
    kept, tensors = read_samples(samples, read, callbacks)
    stacked = torch.stack(tensors)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "paths": [str(s.path) for s in kept], field: stacked}, cache)
    return kept, stacked


def cached_vectors(samples: Sequence[Sample], backbone: BackboneEmbedder, views: int, seed: int, roi: str | None,
                   cache: Path, callbacks: Callbacks | None = None) -> tuple[list[Sample], torch.Tensor]:
    """(kept samples, vectors (N, views, D)); reused from `cache` when made from the same inputs."""
    augment, generator = InspectionAugment(), torch.Generator().manual_seed(seed)
    return _cached(samples, [backbone.fingerprint, views, seed, roi], cache, "vectors",
                   lambda image: view_vectors(backbone, image, views, augment, generator, roi), callbacks)


def cached_patch_vectors(samples: Sequence[Sample], backbone: BackboneEmbedder, roi: str | None, cache: Path,
                         callbacks: Callbacks | None = None) -> tuple[list[Sample], torch.Tensor]:
    """(kept samples, backbone patch grids (N, h, w, D) in float16); reused from `cache` when made from the
    same inputs."""
    return _cached(samples, [backbone.fingerprint, "patches", roi], cache, "patches",
                   lambda image: torch.from_numpy(backbone.embed([apply_roi(image, roi)]).patches[0]).half(),
                   callbacks)


def _nearest_distance(bank: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query's Euclidean distance to its nearest bank vector (exact, FAISS), for queries (..., D)."""
    import faiss

    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    flat = np.ascontiguousarray(queries.reshape(-1, queries.shape[-1]), dtype=np.float32)
    squared, _ = index.search(flat, 1)
    return np.sqrt(np.maximum(squared[:, 0], 0.0)).reshape(queries.shape[:-1])


def _draw_bank(grids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = grids.reshape(-1, grids.shape[-1])
    return flat[rng.choice(len(flat), min(MINING_BANK, len(flat)), replace=False)].astype(np.float32)


def mine_patches(samples: Sequence[Sample], grids: torch.Tensor, labels: Sequence[int], seed: int,
                 bank: np.ndarray | None = None) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """Labelled patch vectors (M, 1, D) from image-level labels, their labels, and the good bank they were
    mined against. Each good image gives PATCHES_PER_GOOD random patches and its HARD_FRACTION least like
    the bank (without a given bank: the bank of the other half of the good images, so an image is never
    compared with itself); each defect image its mask's patches, or its HARD_FRACTION least like the bank."""
    rng = np.random.default_rng(seed)
    grids_np = grids.numpy()
    count, height, width, dim = grids_np.shape
    per_image = height * width
    n_hard = max(1, int(round(per_image * HARD_FRACTION)))
    good_rows = [n for n, s in enumerate(samples) if not s.is_defect]
    halves = [good_rows[0::2], good_rows[1::2]] if bank is None else [good_rows]
    banks = ([_draw_bank(grids_np[halves[1]], rng), _draw_bank(grids_np[halves[0]], rng)] if bank is None
             else [bank])
    mined_bank = bank if bank is not None else np.concatenate(banks)[rng.permutation(sum(map(len, banks)))
                                                                       [:MINING_BANK]]
    vectors, mined_labels = [], []

    def take(row: int, positions: np.ndarray) -> None:
        vectors.append(grids_np[row].reshape(per_image, dim)[positions])
        mined_labels.extend([labels[row]] * len(positions))

    for half, half_bank in zip(halves, banks):
        if not half:
            continue
        distances = _nearest_distance(half_bank, grids_np[half].reshape(len(half), per_image, dim))
        for row, row_distances in zip(half, distances):
            hard = np.argsort(-row_distances, kind="stable")[:n_hard]
            rest = np.setdiff1d(np.arange(per_image), hard)
            take(row, np.concatenate([hard, rng.choice(rest, min(PATCHES_PER_GOOD, len(rest)), replace=False)]))
    defect_rows = [n for n, s in enumerate(samples) if s.is_defect]
    masks = {n: patch_mask(samples[n].mask_path, (height, width)).ravel() for n in defect_rows
             if samples[n].mask_path}
    unmasked = [n for n in defect_rows if n not in masks or not masks[n].any()]
    distances = dict(zip(unmasked, _nearest_distance(mined_bank, grids_np[unmasked].reshape(len(unmasked), per_image,
                                                                                          dim)))) if unmasked else {}
    for row in defect_rows:
        if row in distances:
            take(row, np.argsort(-distances[row], kind="stable")[:n_hard])
        else:
            take(row, np.flatnonzero(masks[row]))
    stacked = torch.from_numpy(np.concatenate(vectors).astype(np.float32))[:, None, :]
    return stacked, mined_labels, mined_bank


def join_sample(vectors: torch.Tensor, labels: Sequence[int], seed: int) -> torch.Tensor:
    """Up to JOIN_SAMPLE good ones (class 0, as class_ids numbers them) of mined patch vectors (M, 1, D), drawn
    at random: what measures a joined head's scales."""
    good = np.flatnonzero(np.asarray(labels) == 0)
    return vectors[np.random.default_rng(seed).permutation(good)[:JOIN_SAMPLE], 0]


def train_triplet_head(samples: Sequence[Sample], backbone: BackboneEmbedder, out_dir: str | Path,
                       head_config: HeadConfig | None = None, settings: TrainSettings | None = None,
                       views: int = 2, resume: bool = False, on_event: OnEvent | None = None,
                       callbacks: Callbacks | None = None, triplet: TripletOptions | None = None) -> TrainResult:
    """Cache the backbone's vectors of a stratified train/validation split (each image read told to
    callbacks.progress, the unreadable ones to callbacks.skip), then train the head on them. `on_event`: the
    training loop's events (a TrainEvent each, not a Callbacks hook)."""
    head_config = head_config or HeadConfig()
    settings = settings or TrainSettings()
    head_config.backbone, head_config.in_dim = backbone.config, backbone.dim
    out_dir = Path(out_dir)
    if head_config.joined and head_config.level != "patch":
        raise TrainingError("a joined head is trained at the patch level", hint="set {param} to patch",
                            parameter="level")
    if head_config.level == "patch":
        return _train_patch_head(samples, backbone, out_dir, head_config, settings, resume, on_event, callbacks,
                                 triplet)
    kept, vectors = cached_vectors(samples, backbone, max(1, views), settings.seed, head_config.roi,
                                   out_dir / FEATURES, callbacks)
    position = {str(s.path): i for i, s in enumerate(kept)}
    train, val = validation_split(kept, settings.val_fraction, settings.seed)
    train_rows, val_rows = ([position[str(s.path)] for s in part] for part in (train, val))
    task = HeadTask(head_config, settings, vectors[train_rows], class_ids(train)[0],
                    vectors[val_rows] if val else None, class_ids(val)[0] if val else [], triplet)
    return with_splits(run_training(task, settings, out_dir, resume, on_event), train, val)


def _train_patch_head(samples: Sequence[Sample], backbone: BackboneEmbedder, out_dir: Path, head_config: HeadConfig,
                      settings: TrainSettings, resume: bool, on_event: OnEvent | None, callbacks: Callbacks | None,
                      triplet: TripletOptions | None) -> TrainResult:
    """The patch level: cache the backbone's patch grids, mine labelled patches, train the head on them."""
    kept, grids = cached_patch_vectors(samples, backbone, head_config.roi, out_dir / PATCH_FEATURES, callbacks)
    position = {str(s.path): i for i, s in enumerate(kept)}
    train, val = validation_split(kept, settings.val_fraction, settings.seed)
    labels, names = class_ids(train)
    train_vectors, train_labels, bank = mine_patches(train, grids[[position[str(s.path)] for s in train]], labels,
                                                     settings.seed)
    val_vectors, val_labels = None, []
    if val:
        known = {name: n for n, name in enumerate(names)}
        val_ids, val_names = class_ids(val)
        # the validation images' classes by the training part's numbering (a class it lacks is dropped)
        val_ids = [known.get(val_names[i], -1) for i in val_ids]
        keep = [n for n, i in enumerate(val_ids) if i >= 0]
        if keep:
            val_vectors, val_labels, _ = mine_patches([val[n] for n in keep],
                                                      grids[[position[str(val[n].path)] for n in keep]],
                                                      [val_ids[n] for n in keep], settings.seed, bank)
    patch_settings = dataclasses.replace(settings, batch_size=max(settings.batch_size, PATCH_BATCH))
    task = HeadTask(head_config, patch_settings, train_vectors, train_labels, val_vectors, val_labels, triplet,
                    join_sample(train_vectors, train_labels, settings.seed) if head_config.joined else None)
    return with_splits(run_training(task, settings, out_dir, resume, on_event), train, val)
