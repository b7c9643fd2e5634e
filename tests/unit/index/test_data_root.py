"""The data root (issue 28): an index records the folder its exemplars' files are under, and after the data moves
(with the index, or elsewhere and named) its paths name the files where they are now."""

import json
import os
import shutil

import numpy as np
import pytest

from simsearch.errors import InputError
from simsearch.index import ExemplarIndex, NewExemplar
from simsearch.index.persist import update_index

DIM = 8


def _line(root, count=6):
    """root/data/good/NN.png (files with distinct bytes) and an image-mode index of them in root/index."""
    folder = root / "data" / "good"
    folder.mkdir(parents=True)
    paths = []
    for number in range(count):
        path = folder / f"{number:02d}.png"
        path.write_bytes(f"part {number}".encode())
        paths.append(str(path))
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image", k=1)
    vectors = np.random.default_rng(0).normal(size=(count, DIM)).astype(np.float32)
    index.add([NewExemplar(path, "good", None, f"h{n}") for n, path in enumerate(paths)], vectors)
    index.save(root / "index")
    return root / "index", paths


def test_the_root_is_recorded_and_the_catalogue_keeps_paths_older_simsearch_reads(tmp_path):
    folder, paths = _line(tmp_path / "line")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data_root"] == str(tmp_path / "line" / "data" / "good")
    assert manifest["data_root_from_index"] == os.path.join("..", "data", "good")
    assert manifest["format_version"] == 1  # no new format: the catalogue's paths read as before
    assert sorted(e.path for e in ExemplarIndex.load(folder).exemplars.values()) == paths


def test_paths_follow_the_data_when_it_moves_with_the_index(tmp_path):
    folder, _ = _line(tmp_path / "line")
    shutil.move(tmp_path / "line", tmp_path / "moved")
    index = ExemplarIndex.load(tmp_path / "moved" / "index")
    assert all(os.path.isfile(e.path) and e.path.startswith(str(tmp_path / "moved")) for e in index.exemplars.values())
    assert index.data_root == str(tmp_path / "moved" / "data" / "good")

    # and a change saved there records the new root (no lookup needed next time)
    def drop_first(store):
        return store.remove([min(store.exemplars)])

    update_index(tmp_path / "moved" / "index", drop_first)
    manifest = json.loads((tmp_path / "moved" / "index" / "manifest.json").read_text())
    assert manifest["data_root"] == str(tmp_path / "moved" / "data" / "good")


def test_data_moved_elsewhere_is_found_where_the_caller_says(tmp_path):
    folder, _ = _line(tmp_path / "line")
    shutil.move(tmp_path / "line" / "data", tmp_path / "archive")
    unresolved = ExemplarIndex.load(folder)  # nowhere to look: the paths stay as recorded
    assert not any(os.path.isfile(e.path) for e in unresolved.exemplars.values())
    index = ExemplarIndex.load(folder, data_root=tmp_path / "archive" / "good")
    assert all(os.path.isfile(e.path) for e in index.exemplars.values())
    with pytest.raises(InputError, match="none of the index's exemplar files are under"):
        ExemplarIndex.load(folder, data_root=tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        ExemplarIndex.load(folder, data_root=tmp_path / "nowhere")


def test_files_added_from_elsewhere_widen_the_root_but_never_to_the_file_system(tmp_path):
    folder, _ = _line(tmp_path / "line")
    other = tmp_path / "line" / "data" / "more" / "x.png"
    other.parent.mkdir()
    other.write_bytes(b"x")

    def add_other(store):
        store.add([NewExemplar(str(other), "good", None, "hx")], np.ones((1, DIM), np.float32))

    update_index(folder, add_other)
    assert json.loads((folder / "manifest.json").read_text())["data_root"] == str(tmp_path / "line" / "data")
    index = ExemplarIndex.load(folder)

    def add_array(store):  # an in-memory image has no path under any root
        store.add([NewExemplar("<array 0123>", "good", None, "ha")], np.zeros((1, DIM), np.float32))

    update_index(folder, add_array)
    assert json.loads((folder / "manifest.json").read_text())["data_root"] == index.data_root


def test_an_index_without_a_recorded_root_loads_and_can_be_pointed_at_moved_data(tmp_path):
    """An index saved before the root was recorded: its paths are absolute, their common folder is the root."""
    folder, paths = _line(tmp_path / "line")
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("data_root", "data_root_from_index"):
        manifest.pop(key)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert sorted(e.path for e in ExemplarIndex.load(folder).exemplars.values()) == paths
    shutil.move(tmp_path / "line" / "data", tmp_path / "archive")
    index = ExemplarIndex.load(folder, data_root=tmp_path / "archive" / "good")
    assert all(os.path.isfile(e.path) for e in index.exemplars.values())


def test_a_damaged_root_record_is_refused(tmp_path):
    from simsearch.index import StorageError

    folder, _ = _line(tmp_path / "line")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["data_root"] = "relative/folder"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StorageError, match="data_root is not an absolute folder"):
        ExemplarIndex.load(folder)
