"""Embed: images -> vectors. Every embedder implements `Embedder` and registers in `registry`."""

from simsearch.embed.base import Embedder, Embeddings, iter_embedded
from simsearch.embed.registry import create_embedder, embedder_from_config, register_embedder
from simsearch.errors import WeightsError

__all__ = ["Embedder", "Embeddings", "WeightsError", "create_embedder", "embedder_from_config", "iter_embedded",
           "register_embedder"]
