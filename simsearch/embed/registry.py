"""Embedders: images -> vectors. `create_embedder` builds one from a CLI-style spec, `embedder_from_config`
rebuilds the one an index was made with."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from simsearch.embed.base import Embedder
from simsearch.errors import UnknownComponentError

# kind -> function(config, weights) rebuilding an embedder; later embedders register here.
_FROM_CONFIG: dict[str, Callable[..., Embedder]] = {}
# spec prefix -> function(argument, **options) building a new embedder, e.g. "backbone:resnet18".
_FROM_SPEC: dict[str, Callable[..., Embedder]] = {}


def register_embedder(kind: str, from_config: Callable[..., Embedder], from_spec: Callable[..., Embedder]) -> None:
    """Make an embedder kind available to specs (`kind:ARG`) and to saved configs."""
    _FROM_CONFIG[kind] = from_config
    _FROM_SPEC[kind] = from_spec


def _backbone_from_spec(argument: str, **options: Any) -> Embedder:
    from simsearch.embed.backbone import BackboneEmbedder
    return BackboneEmbedder(backbone=argument or "resnet18", **options)


def _backbone_from_config(config: dict, weights: str | Path | None = None, **runtime: Any) -> Embedder:
    from simsearch.embed.backbone import BackboneEmbedder
    return BackboneEmbedder.from_config(config, weights=weights, **runtime)


register_embedder("backbone", _backbone_from_config, _backbone_from_spec)


def _triplet_ae_from_spec(argument: str, **options: Any) -> Embedder:
    from simsearch.embed.triplet_ae import TripletAutoencoderEmbedder
    return TripletAutoencoderEmbedder.from_spec(argument, **options)


def _triplet_ae_from_config(config: dict, weights: str | Path | None = None, **runtime: Any) -> Embedder:
    from simsearch.embed.triplet_ae import TripletAutoencoderEmbedder
    return TripletAutoencoderEmbedder.from_config(config, weights=weights, **runtime)


def _triplet_head_from_spec(argument: str, **options: Any) -> Embedder:
    from simsearch.embed.triplet_head import TripletHeadEmbedder
    return TripletHeadEmbedder.from_spec(argument, **options)


def _triplet_head_from_config(config: dict, weights: str | Path | None = None, **runtime: Any) -> Embedder:
    from simsearch.embed.triplet_head import TripletHeadEmbedder
    return TripletHeadEmbedder.from_config(config, weights=weights, **runtime)


# Trained embedders: KIND:CHECKPOINT from `simsearch train KIND`.
register_embedder("triplet-ae", _triplet_ae_from_config, _triplet_ae_from_spec)
register_embedder("triplet-head", _triplet_head_from_config, _triplet_head_from_spec)


def create_embedder(spec: str = "backbone:resnet18", **options: Any) -> Embedder:
    """Build an embedder from 'KIND:ARG' (e.g. 'backbone:wide_resnet50_2'); a bare name means a backbone."""
    kind, _, argument = spec.partition(":") if ":" in spec else ("backbone", "", spec)
    if kind not in _FROM_SPEC:
        raise UnknownComponentError(f"unknown embedder {kind!r}; known: {', '.join(sorted(_FROM_SPEC))}",
                                    hint="name one of them in {param}", parameter="embedder")
    return _FROM_SPEC[kind](argument, **options)


def embedder_from_config(config: dict, weights: str | Path | None = None, **runtime: Any) -> Embedder:
    """Rebuild the embedder described by a saved config."""
    kind = config.get("kind")
    if kind not in _FROM_CONFIG:
        raise UnknownComponentError(f"this index needs an embedder of kind {kind!r}, which this simsearch "
                                    "does not have", hint="upgrade simsearch or rebuild the index")
    return _FROM_CONFIG[kind](config, weights=weights, **runtime)


__all__ = ["create_embedder", "embedder_from_config", "register_embedder"]
