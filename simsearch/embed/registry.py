"""Embedders: images -> vectors. `create_embedder` builds one from a CLI-style spec, `embedder_from_config`
rebuilds the one an index was made with.

Each embedder class declares `kind`, `from_config(config, weights=None, **runtime)` and
`from_spec(argument, **options)`, and registers with `@register_embedder`. Built-in kinds are imported on
first use, so importing this module does not load torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from simsearch.errors import UnknownComponentError

if TYPE_CHECKING:
    from simsearch.embed.base import Embedder

# Built-in kinds -> the module whose import registers them.
BUILTIN_KINDS = {
    "backbone": "simsearch.embed.backbone",
    "triplet-ae": "simsearch.embed.triplet_ae",
    "triplet-head": "simsearch.embed.triplet_head",
}
_REGISTRY: dict[str, type] = {}
E = TypeVar("E", bound=type)


def register_embedder(cls: E) -> E:
    """Class decorator: make `cls.kind` available to specs (`kind:ARG`) and to saved configs."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a `kind` class attribute to be registered")
    for method in ("from_config", "from_spec"):
        if not callable(getattr(cls, method, None)):
            raise TypeError(f"{cls.__name__} needs a {method} classmethod to be registered")
    _REGISTRY[kind] = cls
    return cls


def embedder_kinds() -> list[str]:
    """Every kind that can be built: the built-in ones and those registered since."""
    return sorted(set(BUILTIN_KINDS) | set(_REGISTRY))


def embedder_class(kind: str | None) -> type[Embedder] | None:
    """The class registered for `kind` (importing a built-in one on first use), else None."""
    if kind not in _REGISTRY and kind in BUILTIN_KINDS:
        importlib.import_module(BUILTIN_KINDS[kind])
    return _REGISTRY.get(kind)


def create_embedder(spec: str = "backbone:resnet18", **options: Any) -> Embedder:
    """Build an embedder from 'KIND:ARG' (e.g. 'backbone:wide_resnet50_2'); a bare name means a backbone."""
    kind, _, argument = spec.partition(":") if ":" in spec else ("backbone", "", spec)
    cls = embedder_class(kind)
    if cls is None:
        raise UnknownComponentError(f"unknown embedder {kind!r}; known: {', '.join(embedder_kinds())}",
                                    hint="name one of them in {param}", parameter="embedder")
    return cls.from_spec(argument, **options)


def embedder_from_config(config: dict, weights: str | Path | None = None, **runtime: Any) -> Embedder:
    """Rebuild the embedder described by a saved config."""
    kind = config.get("kind")
    cls = embedder_class(kind)
    if cls is None:
        raise UnknownComponentError(f"this index needs an embedder of kind {kind!r}, which this simsearch "
                                    "does not have", hint="upgrade simsearch or rebuild the index")
    return cls.from_config(config, weights=weights, **runtime)


__all__ = ["BUILTIN_KINDS", "create_embedder", "embedder_class", "embedder_from_config", "embedder_kinds",
           "register_embedder"]
