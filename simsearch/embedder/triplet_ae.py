"""The triplet-loss autoencoder as an embedder: its L2-normalised bottleneck is the image vector."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from simsearch.embedder.base import Embedder, Embeddings, tensor_digest
from simsearch.embedder.weights import WeightsError
from simsearch.metric.checkpoint import checkpoint_argument, read_checkpoint, runtime_options
from simsearch.metric.pixels import to_unit_tensor

KIND = "triplet-ae"


class TripletAutoencoderEmbedder(Embedder):
    """Image vectors from a checkpoint of `simsearch train triplet-ae` (no patch vectors: use mode 'image')."""

    def __init__(self, checkpoint: str | Path, batch_size: int = 16, device: str | torch.device | None = None):
        from simsearch.metric.trainers.triplet_ae import AutoencoderConfig
        from simsearch.metric.training import resolve_device

        state = read_checkpoint(checkpoint, kind=KIND)
        self.checkpoint = str(Path(checkpoint).resolve())
        self.model_config = AutoencoderConfig(**state["config"])
        self.batch_size = int(batch_size)
        self.device = resolve_device(str(device) if device is not None else None)
        self.model = self.model_config.build()
        self.model.load_state_dict(state["model"])
        self.model.eval().to(self.device)
        self._digest = tensor_digest(state["model"])

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": KIND, "weights_path": self.checkpoint, "image_size": self.model_config.image_size,
                "embedding_dim": self.model_config.embedding_dim, "channels": self.model_config.channels,
                "widths": list(self.model_config.widths), "roi": self.model_config.roi}

    @property
    def weights_digest(self) -> str:
        return self._digest

    @property
    def dim(self) -> int:
        return self.model_config.embedding_dim

    @property
    def supports_patches(self) -> bool:
        return False

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        pixels = to_unit_tensor(images, self.model_config.image_size, self.model_config.channels,
                                self.model_config.roi, self.device)
        with torch.inference_mode():
            vectors = self.model.encode(pixels)
        return Embeddings(image=vectors.float().cpu().numpy(), patches=None)

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None,
                    **runtime: Any) -> "TripletAutoencoderEmbedder":
        """Reopen the recorded checkpoint, or `weights` (a moved copy of it); the index checks the digest."""
        path = weights or config.get("weights_path")
        if not path or not Path(path).is_file():
            raise WeightsError(f"this index was built with the checkpoint {config.get('weights_path')}, "
                               "which is not there now: pass --weights CHECKPOINT")
        return cls(path, **runtime_options(runtime))

    @classmethod
    def from_spec(cls, argument: str, **options: Any) -> "TripletAutoencoderEmbedder":
        """From `triplet-ae:CHECKPOINT`; image size and weights come from the checkpoint, not the options."""
        return cls(checkpoint_argument(KIND, argument), **runtime_options(options))
