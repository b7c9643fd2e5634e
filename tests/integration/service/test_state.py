"""Copy-on-write index state: scores see whole snapshots, every change is on disk before it is published."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.errors import NotFoundError
from simsearch.index import ExemplarIndex, NewExemplar
from simsearch.service.state import ConflictError, IndexState, ScoreRequest
from tests.conftest import part_image


def test_clone_is_independent(index_copy):
    inspector, _ = index_copy
    original = inspector.index_
    original.artifacts["note"], original.artifact_records["note"] = b"kept", {"what": "a test artifact"}
    clone = original.copy()
    clone.remove([0])
    assert 0 in original.exemplars and len(original.good) == 10 and len(clone.good) == 9
    assert len(original.vectors["patches"]) > len(clone.vectors["patches"])
    # every store is copied, records too (the index kinds' search depth), and the artifacts
    assert set(clone.vectors) == set(original.vectors) and all(
        clone.vectors[role] is not store and clone.vectors[role].record == store.record
        for role, store in original.vectors.items())
    clone.artifact_records["note"]["what"] = "changed"
    assert clone.artifacts["note"] == b"kept" and original.artifact_records["note"]["what"] == "a test artifact"
    del original.artifacts["note"], original.artifact_records["note"]


def test_add_saves_then_publishes_a_new_snapshot(index_copy):
    inspector, folder = index_copy
    state = IndexState(inspector, folder)
    before = state.snapshot
    pixels = part_image(np.random.default_rng(5), defect=True)
    exemplar = state.add(pixels, "defect", "scratch", "upload:x.png", "ab" * 32)
    assert exemplar.id not in before.index_.exemplars  # the old snapshot is untouched
    assert state.get(exemplar.id) == exemplar
    on_disk = ExemplarIndex.load(folder)
    assert on_disk.exemplars[exemplar.id].defect_type == "scratch"
    assert on_disk.generation == state.snapshot.index_.generation
    assert state.score([ScoreRequest(pixels)])[0].nearest_defect.id == exemplar.id


def test_remove_unknown_and_last_good(index_copy):
    inspector, folder = index_copy
    state = IndexState(inspector, folder)
    with pytest.raises(NotFoundError):
        state.remove(999)
    good = [e.id for e in inspector.index_.exemplars.values() if e.label == "good"]
    for exemplar_id in good[:-1]:
        state.remove(exemplar_id)
    with pytest.raises(ConflictError):
        state.remove(good[-1])
    assert ExemplarIndex.load(folder).counts()["good"] == 1
    assert state.wait_for_writes(timeout=1.0)


def test_failed_save_changes_nothing(index_copy, monkeypatch):
    from simsearch.index.storage import StorageError

    inspector, folder = index_copy
    state = IndexState(inspector, folder)
    generation = ExemplarIndex.load(folder).generation

    def disk_full(self, folder, **options):
        raise StorageError("disk full")

    monkeypatch.setattr(ExemplarIndex, "save", disk_full)
    with pytest.raises(StorageError):
        state.add(part_image(np.random.default_rng(1)), "good", None, "upload:y.png", "cd" * 32)
    assert state.snapshot is inspector and len(state.snapshot.index_) == 12
    assert ExemplarIndex.load(folder).generation == generation


def test_a_commit_by_another_writer_is_kept_and_picked_up(index_copy):
    inspector, folder = index_copy
    state = IndexState(inspector, folder)
    other = ExemplarIndex.load(folder)
    outside = other.add([NewExemplar("outside.png", "defect", "dent", "12" * 32)],
                        part_image(np.random.default_rng(3), defect=True).mean(axis=(0, 1))[:1].repeat(other.dim)[None])
    other.remove([0])
    other.save(folder)  # e.g. `simsearch add` and `simsearch remove` while the server runs
    exemplar = state.add(part_image(np.random.default_rng(2)), "good", None, "upload:z.png", "ef" * 32)
    on_disk = ExemplarIndex.load(folder)
    assert 0 not in on_disk.exemplars and outside[0] in on_disk.exemplars  # the outside change is kept
    assert exemplar.id not in outside and exemplar.id in on_disk.exemplars  # and its id is not reused
    assert state.get(outside[0]).path == "outside.png"


def test_reads_reload_after_an_outside_commit(index_copy):
    inspector, folder = index_copy
    state = IndexState(inspector, folder)
    other = ExemplarIndex.load(folder)
    other.remove([1])
    other.save(folder)
    assert state.get(1) is None and state.describe()["generation"] == other.generation
