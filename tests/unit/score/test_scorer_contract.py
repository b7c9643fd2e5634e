"""The Scorer contract, run on every registered scorer: the kNN Inspector and each registered baseline go
through the same checks on a tiny synthetic labelled set (random weights, small images, 1 epoch)."""

from __future__ import annotations

import pytest

from simsearch.baselines.registry import baseline_names, get_baseline
from simsearch.score.scorer import FAMILIES, Scorer


@pytest.mark.parametrize("name", baseline_names())
def test_every_baseline_has_one_registry_entry(name):
    entry = get_baseline(name)
    assert entry.name == name and entry.family in FAMILIES and issubclass(entry.scorer, Scorer)


def test_unknown_baseline_names_the_choices():
    from simsearch.errors import UnknownComponentError
    with pytest.raises(UnknownComponentError, match="cam"):
        get_baseline("nope")
