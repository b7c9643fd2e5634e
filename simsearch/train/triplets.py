"""Triplet miners by name, from pytorch-metric-learning: `create_miner("batch-hard", margin=0.2)`.

simsearch keeps only the names its CLI and trainers accept (`--miner batch-hard|semi-hard|all`) and how each
maps onto pml's classes; the distances, mining and reduction are pml's own.
"""

from __future__ import annotations

from collections.abc import Callable

from pytorch_metric_learning import distances, miners
from pytorch_metric_learning.miners import BaseMiner

from simsearch.errors import UnknownComponentError

MinerFactory = Callable[[float, distances.BaseDistance], BaseMiner]
_MINERS: dict[str, MinerFactory] = {}


def register_miner(name: str, factory: MinerFactory) -> None:
    """Make a miner available by name; the factory takes (margin, distance) and returns a pml miner."""
    _MINERS[name] = factory


# batch-hard (Hermans et al. 2017): per anchor, its farthest positive and nearest negative
register_miner("batch-hard", lambda margin, distance: miners.BatchHardMiner(distance=distance))
# semi-hard (Schroff et al. 2015): d(a,p) < d(a,n) <= d(a,p) + margin
register_miner("semi-hard", lambda margin, distance: miners.TripletMarginMiner(
    margin=margin, type_of_triplets="semihard", distance=distance))
# every valid triplet: pml's "all" keeps only margin violators, so an infinite margin keeps them all (the easy
# ones add zero loss and the non-zero average leaves them out either way)
register_miner("all", lambda margin, distance: miners.TripletMarginMiner(
    margin=float("inf"), type_of_triplets="all", distance=distance))


def miner_names() -> list[str]:
    """The registered miner names."""
    return sorted(_MINERS)


def create_miner(name: str, margin: float = 0.2, distance: distances.BaseDistance | None = None) -> BaseMiner:
    """A pml miner by name (batch-hard, semi-hard, all); UnknownComponentError naming the choices otherwise."""
    if name not in _MINERS:
        raise UnknownComponentError(f"unknown miner {name!r}; choose one of {', '.join(miner_names())}")
    return _MINERS[name](float(margin), distance or distances.LpDistance())


__all__ = ["create_miner", "miner_names", "register_miner"]
