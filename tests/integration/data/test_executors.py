"""The executor contract: every registered executor gives a job's outputs batch by batch in input order, with the
unreadable inputs reported in their batch; and Inspector.fit / iter_score on an executor give what they give here."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.data.executors import EXECUTOR_MODULES, EXECUTORS, LocalExecutor, get_executor
from tests.conftest import part_image
from tests.unit.data.test_executors import Positions, numbered_files  # noqa: F401  (fixture)


def _executors():
    """Every registered executor that can run here (Ray only where it is installed: a local Ray of 2 CPUs)."""
    names = sorted(set(EXECUTORS) | set(EXECUTOR_MODULES))
    return [pytest.param(name, marks=pytest.mark.skipif(
        name == "ray" and __import__("importlib").util.find_spec("ray") is None, reason="Ray is not installed"))
        for name in names]


@pytest.fixture(params=_executors())
def executor(request):
    options = {"workers": 2} if request.param == "local" else {"workers": 2, "address": None}
    if request.param == "ray":
        from simsearch.engines.ray_engine import ray_cluster
        from simsearch.errors import InputError
        try:
            with ray_cluster(workers=2, num_cpus=2, object_store_memory=100 * 1024 * 1024) as cluster:
                with get_executor("ray", cluster=cluster) as running:
                    yield running
        except InputError as error:
            pytest.skip(f"Ray cannot start here: {error}")
        return
    with get_executor(request.param, **options) as running:
        yield running


def test_every_executor_gives_the_outputs_in_input_order(executor, numbered_files):  # noqa: F811
    outputs = [row for out in executor.map_batches(Positions(), numbered_files) for row in out]
    readable = [(position, value) for position, value in outputs if position != "skipped"]
    # positions are those of the inputs (the broken file is input 4), the pixels those of the file at that position
    assert readable == [(n, n * 10) for n in range(4)] + [(n + 1, n * 10) for n in range(4, 10)]
    assert [name for tag, name in outputs if tag == "skipped"] == [numbered_files[4]]


def test_fit_and_score_on_the_local_executor_are_the_default(small_embedder, tmp_path):
    from PIL import Image

    from simsearch.inspector import Inspector

    rng = np.random.default_rng(0)
    for number in range(6):
        Image.fromarray(part_image(rng)).save(tmp_path / f"{number}.png")
    files = sorted(tmp_path.glob("*.png"))
    default = Inspector(small_embedder).fit(files[:4])
    mapped = Inspector(small_embedder).fit(files[:4], executor=LocalExecutor(0))
    np.testing.assert_array_equal(default.index_.good.vectors(), mapped.index_.good.vectors())
    assert [r.score for r in default.iter_score(files[4:])] == \
        [r.score for r in mapped.iter_score(files[4:], executor=LocalExecutor(0))]
