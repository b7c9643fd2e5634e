"""The Scorer contract, run on every registered scorer: the kNN Inspector and each registered baseline go
through the same checks on a tiny synthetic labelled set (random weights, small images, 1 epoch)."""

from __future__ import annotations

import math

import pytest

import simsearch
from simsearch.baselines.registry import baseline_names, build_baseline
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import discover_samples
from simsearch.score.results import ScoreResult
from simsearch.score.scorer import FAMILIES, Scorer
from tests.conftest import write_parts

SCORERS = ("knn",) + baseline_names()


def options():
    """Settings for every baseline: random weights, small images, one epoch, no cache (no network)."""
    from simsearch.baselines.compare import CompareSettings
    return CompareSettings(pretrained=False, image_size=64, cnn_image_size=32, epochs=1, batch_size=8,
                           device="cpu", probe_backbones=("resnet18",), cache_dir=None, seed=0)


def make_scorer(name: str, small_embedder) -> Scorer:
    if name == "knn":
        from simsearch.inspector import Inspector
        return Inspector(small_embedder, mode="patch", coreset_ratio=0.5)
    return build_baseline(name, options())


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Labelled synthetic parts to fit on (8 good, 4 defect/spot) and a few others to score."""
    root = tmp_path_factory.mktemp("contract")
    train = discover_samples(write_parts(root / "train", seed=3, n_good=8, n_defect=4))
    test = sorted(p for p in write_parts(root / "test", seed=4, n_good=3, n_defect=2).rglob("*.png"))
    broken = root / "broken.png"
    broken.write_bytes(b"not an image")
    return train, test, broken


@pytest.mark.parametrize("name", SCORERS)
def test_every_scorer_keeps_the_contract(name, parts, small_embedder, tmp_path):
    train, test, broken = parts
    scorer = make_scorer(name, small_embedder)
    assert isinstance(scorer, Scorer)
    assert scorer.family in FAMILIES and scorer.name == name

    assert scorer.fit(train) is scorer

    skipped = []
    inputs = test[:2] + [broken] + test[2:]
    results = list(scorer.iter_score(inputs, Callbacks(skip=lambda item, error: skipped.append(item))))
    assert len(results) == len(test) and len(skipped) == 1
    assert all(isinstance(r, ScoreResult) and isinstance(r.score, float) and math.isfinite(r.score)
               for r in results)
    assert [r.path for r in results] == [str(p) for p in test]
    assert [r.score for r in scorer.score(test)] == pytest.approx([r.score for r in results], abs=1e-5)
    # maps only where needed is a saving, never another score
    assert [r.score for r in scorer.score(test, maps="needed")] == pytest.approx([r.score for r in results], abs=1e-5)

    scorer.save(tmp_path / "saved")
    loaded = simsearch.load(tmp_path / "saved", device="cpu")
    assert type(loaded) is type(scorer) and loaded.name == scorer.name and loaded.family == scorer.family
    # float32 distances of ~16 differ in the last bits between runs: relative, at float32's resolution
    assert [r.score for r in loaded.score(test)] == pytest.approx([r.score for r in results], rel=2e-6, abs=1e-5)
    assert type(scorer).load(tmp_path / "saved", device="cpu").name == scorer.name
    assert isinstance(loaded.describe(), dict)


def place_threshold_at(scorer: Scorer, value: float) -> None:
    """Move a fitted scorer's threshold to `value` (where each kind keeps it), its scale unchanged."""
    from simsearch.decide.threshold import Threshold
    from simsearch.inspector import Inspector
    inspector = scorer if isinstance(scorer, Inspector) else getattr(scorer, "inspector_", None)
    if inspector is None:
        scorer.threshold = value  # a classifier: a threshold on its defect probability
        return
    held = scorer.threshold_ or Threshold(value=value, low=value / 2, high=value * 2)
    held.value = value
    inspector.index_.threshold = held.to_record()


@pytest.mark.parametrize("name", SCORERS)
def test_every_scorer_puts_its_threshold_at_normalised_one_half(name, parts, small_embedder):
    """A line controller reads `normalised_score >= 0.5` as reject, whatever the scorer: the threshold sits at
    exactly 0.5 (a classifier whose threshold was placed at 0.46 included), and the verdict agrees."""
    train, test, _ = parts
    scorer = make_scorer(name, small_embedder).fit(train)
    scores = sorted(r.score for r in scorer.score(test, maps="needed"))
    at = scores[len(scores) // 2]  # a threshold off 0.5 for the classifiers, exactly one image's score
    place_threshold_at(scorer, at)
    assert scorer.threshold_.value == pytest.approx(at)
    results = scorer.score(test, maps="needed")
    on_it = [r for r in results if r.score == pytest.approx(at, abs=1e-9)]
    assert on_it and all(r.normalised_score == pytest.approx(0.5) and r.is_anomaly for r in on_it)
    for result in results:
        assert result.normalised_score == pytest.approx(scorer.threshold_.normalise([result.score])[0])
        assert result.is_anomaly == (result.normalised_score >= 0.5) == (result.score >= at)


def test_inspector_fit_on_samples_indexes_defects_with_their_types(parts, small_embedder):
    from simsearch.inspector import Inspector
    train, _, _ = parts
    inspector = Inspector(small_embedder, mode="image").fit(train)
    assert inspector.index_.counts()["good"] == 8 and inspector.index_.defect_types() == {"spot": 4}
