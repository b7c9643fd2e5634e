"""The baselines' registry: one entry per baseline (its name, family, how it is built from options and how it
is loaded). A new baseline is one class implementing `simsearch.score.scorer.Scorer` plus one
`@register_baseline` entry; `compare`, `train-baseline` and `simsearch.load` find it here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from simsearch.data.callbacks import Callbacks
from simsearch.errors import UnknownComponentError
from simsearch.score.scorer import FAMILIES, Scorer

# (options, callbacks) -> an untrained scorer; options: a CompareSettings (backbone, weights, image size, ...);
# the scorer tells its notes (a backbone skipped, no defects to learn from) to callbacks.note
Build = Callable[[Any, "Callbacks | None"], Scorer]
# (config, tensors, weights, **runtime) -> the saved scorer (see simsearch.baselines.persist.load_baseline)
Load = Callable[..., Scorer]

# Modules whose import registers their methods (similarity first, then the classifiers), in this order.
BUILT_IN = ("simsearch.baselines.similarity", "simsearch.baselines.classifier", "simsearch.baselines.probe",
            "simsearch.baselines.learned")


@dataclass(frozen=True)
class BaselineEntry:
    """What the registry knows of one baseline."""

    name: str
    family: str
    scorer: type
    build: Build
    load: Load
    help: str = ""


_REGISTRY: dict[str, BaselineEntry] = {}


def register_baseline(name: str, build: Build, family: str = "classifier", load: Load | None = None,
                      help: str = "") -> Callable[[type], type]:
    """Class decorator: register a baseline under name; load defaults to the class's `from_saved`."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")

    def decorate(cls: type) -> type:
        _REGISTRY[name] = BaselineEntry(name, family, cls, build, load or cls.from_saved, help)
        return cls
    return decorate


def _load_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def baseline_names() -> tuple[str, ...]:
    """Every registered baseline's name, in registration order."""
    _load_built_in()

    def position(entry: BaselineEntry) -> int:  # built-ins first, in BUILT_IN order, whatever imported first
        module = entry.scorer.__module__
        return BUILT_IN.index(module) if module in BUILT_IN else len(BUILT_IN)
    return tuple(e.name for e in sorted(_REGISTRY.values(), key=position))


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """Registered names from 'all', a comma-separated text or a list (order kept, repeats dropped);
    UnknownComponentError names the choices."""
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not names:
        raise UnknownComponentError("no method named", hint=f"give {{param}} as all or some of "
                                    f"{', '.join(baseline_names())}", parameter="methods")
    if "all" in names:
        return list(baseline_names())
    unknown = [n for n in names if n not in baseline_names()]
    if unknown:
        raise UnknownComponentError(f"unknown method(s) {', '.join(unknown)}", hint=f"{{param}} takes all or "
                                    f"some of {', '.join(baseline_names())}", parameter="methods")
    return list(dict.fromkeys(names))


def get_baseline(name: str) -> BaselineEntry:
    """The entry of a registered baseline; UnknownComponentError names the choices."""
    _load_built_in()
    if name not in _REGISTRY:
        raise UnknownComponentError(f"unknown baseline {name!r}", hint=f"{{param}} takes one of "
                                    f"{', '.join(baseline_names())}", parameter="method")
    return _REGISTRY[name]


def build_baseline(name: str, options: Any, callbacks: Callbacks | None = None) -> Scorer:
    """A fresh, untrained baseline built from options (a CompareSettings)."""
    return get_baseline(name).build(options, callbacks)


def open_baseline(name: str, config: dict[str, Any], tensors: dict, weights: str | Path | None = None,
                  **runtime: Any) -> Scorer:
    """A saved baseline of this name, from its config and tensors."""
    return get_baseline(name).load(config, tensors, weights=weights, **runtime)
