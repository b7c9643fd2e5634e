"""Many writers on one index folder (issue 13 items 1-3): nothing committed is lost, ids are never reused,
clean-up never deletes another save's files, and a busy lock is a one-line conflict, not a hang."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import ConflictError, IndexProblem
from simsearch.index import ExemplarIndex, IndexLock, NewExemplar, update_index

DIM = 8


def _new_index(folder: Path, n: int = 3) -> ExemplarIndex:
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image")
    index.add([NewExemplar(f"seed{i}.png", sha256=f"seed{i}") for i in range(n)],
              np.random.default_rng(0).normal(size=(n, DIM)))
    index.save(folder)
    return index


def test_a_stale_read_is_refused_instead_of_saved_over_a_newer_commit(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    first, second = ExemplarIndex.load(folder), ExemplarIndex.load(folder)
    first.add([NewExemplar("a.png", sha256="a")], np.ones((1, DIM)))
    first.save(folder)
    second.add([NewExemplar("b.png", sha256="b")], np.ones((1, DIM)))
    with pytest.raises(ConflictError, match="changed by another writer"):
        second.save(folder)  # on main this saved and lost a.png, and gave b.png a.png's id
    assert [e.path for e in ExemplarIndex.load(folder).exemplars.values()][-1] == "a.png"


def test_a_busy_lock_is_a_one_line_conflict_after_the_wait(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConflictError) as caught:
            update_index(folder, lambda index: index.remove([0]), wait=0.1)
        assert caught.value.exit_code == 5 and "another writer" in caught.value.render(lambda p: "--" + p)
        assert "--wait" in caught.value.render(lambda p: "--" + p)
    finally:
        holder.kill()
        holder.wait()
    update_index(folder, lambda index: index.remove([0]), wait=5)  # free again
    assert 0 not in ExemplarIndex.load(folder).exemplars


def test_the_lock_is_reentrant_in_one_thread(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    with IndexLock(folder, wait=0):
        with IndexLock(folder, wait=0):
            pass
        update_index(folder, lambda index: index.remove([1]), wait=0)
    assert 1 not in ExemplarIndex.load(folder).exemplars


def test_another_thread_of_the_process_waits_like_another_process(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    outcome = []

    def other_writer():
        try:
            with IndexLock(folder, wait=0.1):
                outcome.append("acquired")
        except ConflictError as error:
            outcome.append(error.exit_code)

    with IndexLock(folder, wait=0):
        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join()
    assert outcome == [5]
    thread = threading.Thread(target=other_writer)  # released: now it gets the lock
    thread.start()
    thread.join()
    assert outcome == [5, "acquired"]


def test_clean_up_keeps_files_newer_than_the_commit_and_removes_older_ones(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)  # generation 1
    # Files another writer renamed into place but has not committed yet (a generation ahead of ours).
    ahead = [folder / "good-000009.faiss", folder / "catalogue-000009.sqlite"]
    for path in ahead:
        path.write_bytes(b"not yet committed")
    update_index(folder, lambda index: index.remove([0]))  # generation 2
    assert all(path.exists() for path in ahead)
    names = {p.name for p in folder.iterdir()}
    assert not any(name.endswith("-000001.faiss") or name.endswith("-000001.sqlite") for name in names)
    assert len(ExemplarIndex.load(folder)) == 2


def test_saving_over_an_index_needs_force_and_never_reuses_its_ids(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder, n=5)
    fresh = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image")
    fresh.add([NewExemplar(f"new{i}.png", sha256=f"new{i}") for i in range(2)], np.zeros((2, DIM)))
    with pytest.raises(ConflictError, match="already holds an index") as caught:
        fresh.save(folder)
    assert "--force" in caught.value.render(lambda p: "--" + p)
    assert len(ExemplarIndex.load(folder)) == 5
    fresh.save(folder, force=True)
    replaced = ExemplarIndex.load(folder)
    assert sorted(replaced.exemplars) == [5, 6] and replaced.next_id == 7
    assert replaced.nearest_good(np.zeros((1, DIM)), 1)[1][0, 0] in (5, 6)


def test_a_symlinked_lock_file_is_refused(tmp_path):
    folder = tmp_path / "idx"
    _new_index(folder)
    outside = tmp_path / "outside.txt"
    (folder / ".lock").unlink()
    (folder / ".lock").symlink_to(outside)
    with pytest.raises(IndexProblem, match="cannot lock"):
        update_index(folder, lambda index: index.remove([0]))
    assert not outside.exists()


def test_a_link_planted_after_the_check_is_not_followed_either(tmp_path, monkeypatch):
    # the window between our lstat check and the open: filelock's own O_NOFOLLOW refuses the link
    folder = tmp_path / "idx"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    (folder / ".lock").symlink_to(outside)
    monkeypatch.setattr(IndexLock, "_refuse_a_link", lambda self: None)
    with pytest.raises(IndexProblem, match="cannot lock"), IndexLock(folder, wait=0):
        pass
    assert not outside.exists()


def test_duplicates_by_sha256_are_skipped_on_request():
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image")
    index.add([NewExemplar("a.png", sha256="A")], np.zeros((1, DIM)))
    items = [NewExemplar("a-again.png", sha256="A"), NewExemplar("b.png", sha256="B"),
             NewExemplar("b-copy.png", sha256="B")]
    assert [i.path for i in index.duplicates(items)] == ["a-again.png", "b-copy.png"]
    assert index.add(items, np.ones((3, DIM)), allow_duplicates=False) == [1]
    assert len(index) == 2 and index.add(items[:1], np.ones((1, DIM))) == [2]  # allowed by default
