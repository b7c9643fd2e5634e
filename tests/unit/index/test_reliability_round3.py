"""Issue 29 (third reliability round), the index's share: k above the exemplar count, the manifest's shape and
checks, ids near their limit, hostile folder names, stale files of crashed writers, readers racing a commit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import ConflictError, IndexProblem, InputError
from simsearch.index import ExemplarIndex, NewExemplar
from simsearch.index.exemplar_index import MAX_K

DIM = 8


def _index(n_good: int = 3, k: int = 1, mode: str = "image") -> ExemplarIndex:
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode=mode, k=k)
    vectors = np.random.default_rng(0).normal(size=(n_good, DIM)).astype(np.float32)
    index.add([NewExemplar(f"{i}.png", sha256=f"h{i}") for i in range(n_good)], vectors)
    return index


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# -- item 2: k above the exemplar count ------------------------------------------------------------------
def test_saving_an_index_with_k_above_its_good_exemplars_is_refused(tmp_path):
    index = _index(n_good=3, k=5)
    with pytest.raises(InputError, match="k 5 is above the index's 3 good"):
        index.save(tmp_path / "idx")
    assert not (tmp_path / "idx" / "manifest.json").exists()


def test_removing_below_k_is_refused_and_changes_nothing(tmp_path):
    index = _index(n_good=3, k=3)
    with pytest.raises(ConflictError, match="fewer than the index's k"):
        index.remove([0])
    assert len(index) == 3


@pytest.mark.parametrize("k", [5, 10**9, 2**62])
def test_a_manifest_k_above_the_good_exemplars_or_huge_is_damage(tmp_path, k):
    _index(n_good=3, k=1).save(tmp_path / "idx")
    _edit_manifest(tmp_path / "idx", k=k)
    with pytest.raises(IndexProblem, match="k "):
        ExemplarIndex.load(tmp_path / "idx")


def test_k_is_bounded_when_an_index_is_made():
    with pytest.raises(InputError, match=f"1 to {MAX_K}"):
        ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image", k=MAX_K + 1)


def test_leaving_one_out_uses_the_neighbours_there_are_never_inf():
    index = _index(n_good=3, k=3)
    distances, _ = index.nearest_good(index.good.vectors()[:1], 3, exclude=0)
    assert np.isfinite(distances).all() and distances.shape == (1, 2)


def test_a_non_finite_score_is_null_in_json():
    from simsearch.score.results import Box, ScoreResult

    result = ScoreResult("a.png", math.inf, [], boxes=[Box(0, 0, 1, 1, math.nan)])
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["score"] is None and record["boxes"][0]["score"] is None


# -- item 9: the checksums key removed ---------------------------------------------------------------------
def test_a_manifest_without_its_checksums_is_damage(tmp_path):
    _index().save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    del manifest["checksums"]
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexProblem, match="records no checksums"):
        ExemplarIndex.load(tmp_path / "idx")


# -- item 12: the manifest's shape ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ['{"a": ' * 100_000 + "1" + "}" * 100_000,
                                  '{"format": "simsearch-index", "embedder": []}',
                                  '{"format": "simsearch-index", "embedder": {"config": 3}}'])
def test_a_deeply_nested_or_misshapen_manifest_is_an_index_problem_exit_3(tmp_path, text):
    from typer.testing import CliRunner

    from simsearch.cli.main import app

    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "manifest.json").write_text(text)
    with pytest.raises(IndexProblem, match="damaged"):
        ExemplarIndex.load(folder)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "part.png")
    for command in (["score", "--index", str(folder), str(tmp_path / "part.png")], ["info", str(folder)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 3, result.output
        assert "damaged" in result.output and "Traceback" not in result.output


# -- item 18: a threshold that decides nothing, a mode no one registered ---------------------------------------
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_threshold_in_the_manifest_is_damage(tmp_path, value):
    _index().save(tmp_path / "idx")
    _edit_manifest(tmp_path / "idx", threshold={"value": value, "low": 0.0, "high": 1.0, "policy": "fixed"})
    with pytest.raises(IndexProblem, match="threshold's value"):
        ExemplarIndex.load(tmp_path / "idx")


def test_a_non_finite_threshold_is_never_saved(tmp_path):
    index = _index()
    index.threshold = {"value": math.inf, "low": 0.0, "high": 1.0, "policy": "fixed"}
    with pytest.raises(InputError, match="threshold's value"):
        index.save(tmp_path / "idx")


def test_an_unknown_mode_is_an_index_problem_that_names_no_score_flag(tmp_path):
    from typer.testing import CliRunner

    from simsearch.cli.main import app

    _index().save(tmp_path / "idx")
    _edit_manifest(tmp_path / "idx", mode="bogus")
    with pytest.raises(IndexProblem, match="mode 'bogus'"):
        ExemplarIndex.load(tmp_path / "idx")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "idx")])
    assert result.exit_code == 3 and "build-index --mode" in result.output
    assert "for --mode" not in result.output


# -- item 15: ids near their limit ----------------------------------------------------------------------------
def test_an_add_past_the_id_limit_is_refused_before_anything_is_committed(tmp_path):
    from simsearch.index.roles import ID_LIMIT

    folder = tmp_path / "idx"
    _index().save(folder)
    _edit_manifest(folder, next_id=ID_LIMIT - 2)
    index = ExemplarIndex.load(folder)
    vectors = np.zeros((2, DIM), np.float32)
    with pytest.raises(IndexProblem, match="no ids left"):
        index.add([NewExemplar("a.png", sha256="ha"), NewExemplar("b.png", sha256="hb")], vectors)
    assert len(index) == 3 and index.next_id == ID_LIMIT - 2
    index.add([NewExemplar("a.png", sha256="ha")], vectors[:1])  # the last id there is
    index.save(folder)
    assert len(ExemplarIndex.load(folder)) == 4


# -- item 6: folder names that mean something in a URI --------------------------------------------------------
@pytest.mark.parametrize("name", ["idx%41", "idx#1", "idx?mode=rw", "idx%2541 x"])
def test_folder_names_with_uri_characters_read_their_own_catalogue(tmp_path, name):
    import dataclasses

    other = _index(n_good=2)
    other.exemplars = {i: dataclasses.replace(e, path=f"other-{i}.png") for i, e in other.exemplars.items()}
    for decoded in ("idxA", "idx%41 x"):  # what `idx%41` and `idx%2541 x` name once percent-decoded
        other.save(tmp_path / decoded)
    _index(n_good=3).save(tmp_path / name)
    loaded = ExemplarIndex.load(tmp_path / name)
    assert sorted(e.path for e in loaded.exemplars.values()) == ["0.png", "1.png", "2.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"idxA", "idx%41 x", name})  # no stray file


# -- items 7 and 16: what crashed writers (or someone) left in the folder --------------------------------------
def test_a_folder_named_like_a_stale_temporary_file_never_fails_a_save(tmp_path):
    folder = tmp_path / "idx"
    index = _index()
    index.save(folder)
    planted = folder / ".good-000001.faiss.0123456789ab.tmp"
    planted.mkdir()
    index.add([NewExemplar("new.png", sha256="hn")], np.ones((1, DIM), np.float32))
    index.save(folder)  # committed and reported as saved
    assert len(ExemplarIndex.load(folder)) == 4 and planted.is_dir()


@pytest.mark.parametrize("name", [".catalogue-000002.sqlite.0123456789ab.tmp-journal",
                                  "catalogue-000001.sqlite-journal"])
def test_the_sqlite_journal_of_a_killed_writer_is_cleaned_by_the_next_save(tmp_path, name):
    folder = tmp_path / "idx"
    index = _index()
    index.save(folder)
    (folder / name).write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7")  # a journal header's magic
    index.save(folder)
    assert not (folder / name).exists()


# -- item 4: readers racing a commit ---------------------------------------------------------------------------
def test_a_reader_whose_files_vanish_under_a_commit_reads_the_new_generation(tmp_path, monkeypatch):
    from simsearch.index import storage

    folder = tmp_path / "idx"
    writer = _index()
    writer.save(folder)
    real_sha256, raced = storage.file_sha256, []

    def commit_meanwhile(path):
        if not raced:  # a writer commits (and deletes this generation) between the check and the hashing
            raced.append(path)
            writer.add([NewExemplar("new.png", sha256="hn")], np.ones((1, DIM), np.float32))
            writer.save(folder)
        return real_sha256(path)  # FileNotFoundError: the file is gone

    monkeypatch.setattr(storage, "file_sha256", commit_meanwhile)
    loaded = ExemplarIndex.load(folder)
    assert raced and len(loaded) == 4 and loaded.generation == 2


def test_a_file_that_vanishes_without_a_new_commit_is_an_index_problem(tmp_path, monkeypatch):
    from simsearch.index import storage

    _index().save(tmp_path / "idx")

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(storage, "file_sha256", gone)
    with pytest.raises(IndexProblem, match="could not be read"):
        ExemplarIndex.load(tmp_path / "idx")
