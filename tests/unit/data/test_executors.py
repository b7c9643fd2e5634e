"""The executor contract: every registered executor gives a job's outputs batch by batch in input order, with the
unreadable inputs reported in their batch; and Inspector.fit / iter_score on an executor give what they give here."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.data.executors import Batch, BatchJob, LocalExecutor, get_executor
from simsearch.errors import UnknownComponentError


class Positions(BatchJob[list]):
    """Each readable item's position and a pixel of it, and the skipped inputs' names."""

    batch_size = 3

    def __call__(self, batch: Batch) -> list:
        return [(item.position, int(item.pixels[0, 0, 0])) for item in batch.items] + \
            [("skipped", name) for name, _ in batch.skipped]


@pytest.fixture
def numbered_files(tmp_path):
    from PIL import Image

    paths = []
    for number in range(10):
        path = tmp_path / f"{number:02d}.png"
        Image.fromarray(np.full((8, 8, 3), number * 10, np.uint8)).save(path)
        paths.append(str(path))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    return paths[:4] + [str(broken)] + paths[4:]


def test_an_unknown_executor_names_the_known_ones():
    with pytest.raises(UnknownComponentError, match="local, ray") as raised:
        get_executor("spark")
    assert raised.value.parameter == "engine"
    assert isinstance(get_executor("local", workers=0), LocalExecutor)


def test_the_local_executor_overlaps_a_two_stage_job_and_keeps_the_order(numbered_files):
    class TwoStages(Positions):
        def stages(self):
            return (lambda batch: batch), (lambda batch: Positions.__call__(self, batch))

    for workers in (0, 2):
        outputs = [row for out in LocalExecutor(workers).map_batches(TwoStages(), numbered_files) for row in out]
        assert [p for p, _ in outputs if p != "skipped"] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
