"""The Runtime value: one default batch size, checked fields, the library's keywords made into one, and what
embedders are given of it."""

from __future__ import annotations

import pytest

from simsearch.runtime import Runtime


def test_load_takes_a_runtime_or_its_fields_as_keywords(small_embedder, part_folder, tmp_path):
    from simsearch.inspector import Inspector

    Inspector(small_embedder).fit(part_folder / "good").save(tmp_path / "idx")
    by_keywords = Inspector.load(tmp_path / "idx", device="cpu", batch_size=5, workers=0)
    by_value = Inspector.load(tmp_path / "idx", runtime=Runtime(device="cpu", batch_size=5, workers=0))
    for inspector in (by_keywords, by_value):
        assert inspector.embedder.batch_size == 5 and inspector.workers == 0
    image = part_folder / "good" / "00.png"
    assert by_keywords.score_samples([image]) == pytest.approx(by_value.score_samples([image]))
