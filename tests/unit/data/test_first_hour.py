"""Issue 12 (data side): labelled folders index defects as defects, symlinks are walked, CSV labels are read by
header, MVTec masks are never inputs."""

import os

import numpy as np
import pytest
from PIL import Image

from simsearch.data.datasets import DatasetError, exemplar_samples, good_image_files, read_label_csv
from simsearch.data.images import list_image_files


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path)
    return path


def test_labelled_folder_gives_typed_defects_not_good(tmp_path):
    _image(tmp_path / "good/a.png")
    _image(tmp_path / "defect/crack/b.png")
    _image(tmp_path / "defect/c.png")
    samples = {s.path.name: (s.label, s.defect_type) for s in exemplar_samples([tmp_path])}
    assert samples == {"a.png": ("good", None), "b.png": ("defect", "crack"), "c.png": ("defect", None)}
    assert good_image_files([tmp_path]) == [tmp_path / "good/a.png"]


def test_mvtec_test_tree_and_category(tmp_path):
    _image(tmp_path / "train/good/000.png")
    _image(tmp_path / "test/good/001.png")
    _image(tmp_path / "test/broken/002.png")
    _image(tmp_path / "ground_truth/broken/002_mask.png")
    assert [s.path for s in exemplar_samples([tmp_path])] == [tmp_path / "train/good/000.png"]
    labelled = {s.path.name: s.label for s in exemplar_samples([tmp_path / "test"])}
    assert labelled == {"001.png": "good", "002.png": "defect"}


def test_mvtec_masks_are_not_inputs(tmp_path):
    _image(tmp_path / "train/good/000.png")
    _image(tmp_path / "test/broken/002.png")
    _image(tmp_path / "ground_truth/broken/002_mask.png")
    names = [p.name for p in list_image_files([tmp_path])]
    assert names == ["002.png", "000.png"]  # test/broken, train/good; never ground_truth/*_mask.png


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks here")
def test_symlinked_folders_and_files_are_walked_once(tmp_path):
    real = tmp_path / "real"
    _image(real / "good/a.png")
    _image(tmp_path / "elsewhere/b.png")
    val = tmp_path / "val"
    val.mkdir()
    (val / "good").symlink_to(real / "good", target_is_directory=True)
    (val / "b.png").symlink_to(tmp_path / "elsewhere/b.png")
    (val / "loop").symlink_to(val, target_is_directory=True)  # a loop must not hang or repeat files
    names = sorted(p.name for p in list_image_files([val]))
    assert names == ["a.png", "b.png"]


def test_csv_read_by_header_names(tmp_path):
    _image(tmp_path / "defect/x.png")
    _image(tmp_path / "good/y.png")
    # ELPV's own layout: cell_type is not a defect type
    (tmp_path / "labels.csv").write_text("file,defect_probability,cell_type\ndefect/x.png,1.0,mono\n"
                                         "good/y.png,0.0,poly\n")
    samples = read_label_csv(tmp_path / "labels.csv")
    assert [(s.label, s.defect_type) for s in samples] == [("defect", None), ("good", None)]
    (tmp_path / "typed.csv").write_text("type,label,path\nscratch,NG,defect/x.png\n,OK,good/y.png\n")
    assert [(s.label, s.defect_type) for s in read_label_csv(tmp_path / "typed.csv")] == [("defect", "scratch"),
                                                                                        ("good", None)]


@pytest.mark.parametrize("text", ["defect/x.png,1.0,mono\n", "name,score\nx.png,1\n", ""])
def test_csv_with_unknown_header_is_refused(tmp_path, text):
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DatasetError, match="expected a header row with a path column"):
        read_label_csv(tmp_path / "labels.csv")


def test_a_defect_folder_given_as_good_is_refused(tmp_path):
    _image(tmp_path / "NG/a.png")
    with pytest.raises(DatasetError, match="named like a folder of defects"):
        exemplar_samples([tmp_path / "NG"])
