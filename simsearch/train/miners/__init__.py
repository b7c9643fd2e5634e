"""Triplet miners, chosen by name: `create_miner("batch-hard", margin=0.2)`."""

from __future__ import annotations

from typing import Any, Callable

from simsearch.errors import UnknownComponentError
from simsearch.train.miners.all_triplets import AllTripletsMiner
from simsearch.train.miners.base import TripletMiner, Triplets
from simsearch.train.miners.batch_hard import BatchHardMiner
from simsearch.train.miners.semi_hard import SemiHardMiner

_MINERS: dict[str, Callable[..., TripletMiner]] = {}


def register_miner(name: str, factory: Callable[..., TripletMiner]) -> None:
    """Make a miner available by name; the factory takes (margin=..., distance=...)."""
    _MINERS[name] = factory


register_miner("batch-hard", lambda margin=0.2, distance=None: BatchHardMiner(distance))
register_miner("semi-hard", lambda margin=0.2, distance=None: SemiHardMiner(margin, distance))
register_miner("all", lambda margin=0.2, distance=None: AllTripletsMiner(distance))


def miner_names() -> list[str]:
    """The registered miner names."""
    return sorted(_MINERS)


def create_miner(name: str, **options: Any) -> TripletMiner:
    """A miner by name (batch-hard, semi-hard, all); ValueError naming the choices otherwise."""
    if name not in _MINERS:
        raise UnknownComponentError(f"unknown miner {name!r}; choose one of {', '.join(miner_names())}")
    return _MINERS[name](**options)


__all__ = ["AllTripletsMiner", "BatchHardMiner", "SemiHardMiner", "TripletMiner", "Triplets", "create_miner",
           "miner_names", "register_miner"]
