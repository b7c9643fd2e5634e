"""update_index with the caller's own copy of the committed index (the server's snapshot): the copy is changed
where the folder still holds its generation; a commit by another writer since is read, never lost."""

from __future__ import annotations

import numpy as np

import simsearch.index.persist as persist
from simsearch.index import ExemplarIndex, NewExemplar, update_index

DIM = 8
LOAD = persist.load_index


def _add(name: str):
    return lambda index: index.add([NewExemplar(f"{name}.png", sha256=name)],
                                   np.random.default_rng(len(name)).normal(size=(1, DIM)))[0]


def _saved(folder) -> ExemplarIndex:
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image")
    index.add([NewExemplar(f"seed{i}.png", sha256=f"seed{i}") for i in range(3)],
              np.random.default_rng(0).normal(size=(3, DIM)))
    index.save(folder)
    return index


def test_the_current_copy_stands_in_for_reading_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "idx"
    current = _saved(folder)
    reads = []
    monkeypatch.setattr(persist, "load_index", lambda *a, **k: reads.append(a) or LOAD(*a, **k))
    saved, new_id = update_index(folder, _add("a"), current=current)
    assert reads == [] and saved is not current and new_id not in current.exemplars  # the snapshot unchanged
    assert set(LOAD(folder).exemplars) == set(saved.exemplars) == {0, 1, 2, new_id}
    update_index(folder, _add("b"), current=saved)  # and again from what that save committed
    assert reads == [] and len(LOAD(folder)) == 5


def test_a_commit_by_another_writer_is_read_not_lost(tmp_path, monkeypatch):
    folder = tmp_path / "idx"
    current = _saved(folder)
    _, other = update_index(folder, _add("other"))  # another writer commits: current is stale
    reads = []
    monkeypatch.setattr(persist, "load_index", lambda *a, **k: reads.append(a) or LOAD(*a, **k))
    saved, mine = update_index(folder, _add("mine"), current=current)
    assert len(reads) == 1 and {other, mine} <= set(saved.exemplars)
    assert set(LOAD(folder).exemplars) == {0, 1, 2, other, mine}
    # a copy of another folder's index is never taken for this one
    update_index(folder, _add("third"), current=_saved(tmp_path / "elsewhere"))
    assert len(reads) == 2 and len(LOAD(folder)) == 6
