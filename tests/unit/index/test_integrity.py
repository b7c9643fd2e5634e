"""Tampered and damaged index folders (issue 13 items 10-12): every file is checked against the manifest's
record, names outside the folder are refused, and the error names the file (IndexProblem, exit 3)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest

from simsearch.errors import IndexProblem
from simsearch.files import file_sha256
from simsearch.index import ExemplarIndex, NewExemplar, StorageError, VectorStore, storage

DIM = 16


@pytest.fixture
def folder(tmp_path) -> Path:
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="patch", coreset_ratio=0.5)
    grids = np.random.default_rng(0).normal(size=(4, 2, 2, DIM)).astype(np.float32)
    index.add([NewExemplar(f"{i}.png", sha256=f"h{i}") for i in range(4)], grids.mean(axis=(1, 2)), grids)
    index.add([NewExemplar("d.png", "defect", "dent", "hd")], np.ones((1, DIM)))
    index.save(tmp_path / "idx")
    return tmp_path / "idx"


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _rewrite(folder: Path, role: str, data: bytes | None = None, *, record: bool = True) -> Path:
    """Replace one of the generation's files; with `record`, also fix the manifest's checksum (a careful forger)."""
    manifest = _manifest(folder)
    path = folder / manifest["files"][role]
    if data is not None:
        path.write_bytes(data)
    if record:
        manifest["checksums"][role] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_the_manifest_records_size_and_sha256_of_every_file(folder):
    manifest = _manifest(folder)
    assert set(manifest["checksums"]) == set(manifest["files"]) == {"good", "defect", "patches", "defect_patches",
                                                                      "catalogue"}
    for role, name in manifest["files"].items():
        assert manifest["checksums"][role] == {"bytes": (folder / name).stat().st_size,
                                               "sha256": file_sha256(folder / name)}


@pytest.mark.parametrize("role", ["good", "patches", "catalogue"])
def test_a_zeroed_file_is_refused_naming_it(folder, role):
    path = folder / _manifest(folder)["files"][role]
    path.write_bytes(bytes(path.stat().st_size))
    with pytest.raises(StorageError, match=path.name) as caught:
        ExemplarIndex.load(folder)
    assert caught.value.exit_code == 3


def test_a_wrong_dimension_faiss_file_is_refused_even_with_a_matching_checksum(folder):
    foreign = VectorStore(8)
    foreign.add(np.zeros((4, 8), np.float32), np.arange(4))
    path = _rewrite(folder, "good", foreign.to_bytes())
    with pytest.raises(StorageError, match=f"{path.name}.*8-d vectors in a 16-d index"):
        ExemplarIndex.load(folder)


def test_a_foreign_faiss_index_is_refused(folder):
    path = _rewrite(folder, "defect", faiss.serialize_index(faiss.IndexFlatL2(DIM)).tobytes())
    with pytest.raises(StorageError, match=path.name):
        ExemplarIndex.load(folder)


def test_a_catalogue_missing_rows_is_refused(folder):
    path = folder / _manifest(folder)["files"]["catalogue"]
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM exemplars WHERE id = 2")
    connection.close()
    _rewrite(folder, "catalogue")
    with pytest.raises(StorageError, match=f"{path.name}.*good exemplars"):
        ExemplarIndex.load(folder)


def test_next_id_reset_is_refused_so_ids_are_never_reused(folder):
    manifest = _manifest(folder)
    manifest["next_id"] = 0
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StorageError, match="manifest.json.*next_id 0"):
        ExemplarIndex.load(folder)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "good-000001.faiss/../x", ".lock"])
def test_file_names_outside_the_folder_are_refused(folder, name):
    manifest = _manifest(folder)
    manifest["files"]["good"] = name
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StorageError, match="not a file name of the index"):
        ExemplarIndex.load(folder)


@pytest.mark.parametrize("change", [
    lambda m: m.update(dim="384"), lambda m: m.update(dim=10**9), lambda m: m.update(k=0),
    lambda m: m.pop("embedder"), lambda m: m.update(files=["good"]), lambda m: m.update(next_id=-1),
    lambda m: m.update(patch_grid=[1]), lambda m: m.update(threshold="high"), lambda m: m.update(checksums=[]),
    lambda m: m.update(coreset_ratio=5.0)])
def test_a_malformed_manifest_is_an_index_problem(folder, change):
    manifest = _manifest(folder)
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexProblem, match="manifest.json"):
        ExemplarIndex.load(folder)


def test_a_manifest_that_is_not_an_object_is_an_index_problem(folder):
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(StorageError, match="not a JSON object"):
        ExemplarIndex.load(folder)


def test_fast_mode_checks_sizes_but_skips_hashing_big_files(folder, monkeypatch):
    hashed = []
    monkeypatch.setattr(storage, "file_sha256", lambda path: hashed.append(Path(path).name) or "x")
    monkeypatch.setattr(storage, "FAST_HASH_LIMIT", 0)
    ExemplarIndex.load(folder, fast=True)
    assert hashed == []
    path = folder / _manifest(folder)["files"]["patches"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(StorageError, match=f"{path.name}.*bytes"):
        ExemplarIndex.load(folder, fast=True)


def test_temporary_files_are_never_written_through_planted_symlinks(folder, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    generation = _manifest(folder)["generation"] + 1
    for name in [f"good-{generation:06d}.faiss.tmp", f"catalogue-{generation:06d}.sqlite.tmp", "manifest.json.tmp"]:
        (folder / name).symlink_to(victim)
    index = ExemplarIndex.load(folder)
    index.remove([0])
    index.save(folder)
    assert victim.read_text() == "precious" and len(ExemplarIndex.load(folder)) == 4
