"""simsearch: metric-learning similarity search for visual inspection.

data -> embed -> index -> score -> decide -> verdict (evaluate measures it). `import simsearch` is light:
the names below load their modules (and torch, FAISS) only when first used (PEP 562).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# torch and FAISS each keep an OpenMP thread pool; spinning, they starve each other on small CPUs (about 8x
# slower scoring on 2 cores). Set before either loads; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"

_LAZY = {
    "Embedder": "simsearch.embed.base",
    "Embeddings": "simsearch.embed.base",
    "create_embedder": "simsearch.embed.registry",
    "embedder_from_config": "simsearch.embed.registry",
    "ExemplarIndex": "simsearch.index.exemplar_index",
    "Inspector": "simsearch.inspector",
    "ScoreResult": "simsearch.score.results",
    "Sample": "simsearch.data.datasets",
    "discover_samples": "simsearch.data.datasets",
    "Threshold": "simsearch.decide.threshold",
    "SimsearchError": "simsearch.errors",
    "evaluate_dataset": "simsearch.evaluate.evaluation",
    "load": "simsearch.loading",
}

# spelled out (not computed from _LAZY) so that linters and type checkers see the public names;
# tests/test_layers.py keeps the two equal
__all__ = [
    "Embedder", "Embeddings", "ExemplarIndex", "Inspector", "Sample", "ScoreResult", "SimsearchError", "Threshold",
    "create_embedder", "discover_samples", "embedder_from_config", "evaluate_dataset", "load", "__version__",
]

if TYPE_CHECKING:
    from simsearch.data.datasets import Sample, discover_samples
    from simsearch.decide.threshold import Threshold
    from simsearch.embed.base import Embedder, Embeddings
    from simsearch.embed.registry import create_embedder, embedder_from_config
    from simsearch.errors import SimsearchError
    from simsearch.evaluate.evaluation import evaluate_dataset
    from simsearch.index.exemplar_index import ExemplarIndex
    from simsearch.inspector import Inspector
    from simsearch.loading import load
    from simsearch.score.results import ScoreResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
