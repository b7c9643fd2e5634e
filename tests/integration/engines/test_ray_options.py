"""The ray engine's options, without Ray running: a missing Ray is a one-line error with the install command,
the pool is sized from the cluster's resources, and a worker's record becomes the same ScoreResult."""

from __future__ import annotations

import pytest

from simsearch.engines import ray_engine
from simsearch.errors import IndexProblem, InputError


def test_a_workers_own_error_comes_back_as_the_same_error(tmp_path, small_embedder):
    import pickle

    from simsearch.inspector import Inspector, ScoreJob

    inspector = Inspector(small_embedder)
    inspector.folder_ = tmp_path / "no-index"
    # the copy a worker gets, run in this process: its reply is what Ray would carry back to the driver
    actor = ray_engine.BatchActor(pickle.loads(pickle.dumps(ScoreJob(inspector))))
    reply = actor.run(0, [str(tmp_path / "a.png")], ["a.png"])
    with pytest.raises(IndexProblem) as raised:
        ray_engine.raise_failure(reply)
    from simsearch.index.storage import read_manifest
    with pytest.raises(IndexProblem) as expected:  # what opening it here says
        read_manifest(tmp_path / "no-index")
    assert type(raised.value) is type(expected.value)
    assert (raised.value.message, raised.value.hint, raised.value.parameter) == \
        (expected.value.message, expected.value.hint, expected.value.parameter)
    assert raised.value.exit_code == 3


def test_scoring_beyond_this_process_needs_a_saved_index(small_embedder):
    import pickle

    from simsearch.inspector import Inspector, ScoreJob

    with pytest.raises(InputError, match="opens the index from its folder"):
        pickle.dumps(ScoreJob(Inspector(small_embedder)))
