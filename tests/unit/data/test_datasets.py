from pathlib import Path

import pytest
from PIL import Image

from simsearch.data.datasets import DatasetError, count_by_class, discover_samples, good_image_files, read_label_csv


def _touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4)).save(path)


def test_labelled_folders_any_case_with_types(tmp_path):
    for name in ("OK/a.png", "normal/b.bmp", "NG/scratch/c.png", "Anomaly/d.png", "bad/dent/e.tif", "misc/f.png"):
        _touch_image(tmp_path / name)
    samples = discover_samples(tmp_path)
    assert count_by_class(samples) == {"good": 2, "scratch": 1, "defect": 1, "dent": 1}


def test_mvtec_tree_with_masks(tmp_path):
    _touch_image(tmp_path / "train/good/000.png")
    _touch_image(tmp_path / "test/good/000.png")
    _touch_image(tmp_path / "test/crack/000.png")
    _touch_image(tmp_path / "ground_truth/crack/000_mask.png")
    samples = discover_samples(tmp_path)
    assert [(s.label, s.defect_type) for s in samples] == [("defect", "crack"), ("good", None)]
    assert samples[0].mask_path == tmp_path / "ground_truth/crack/000_mask.png"
    assert discover_samples(tmp_path / "test")[0].mask_path == tmp_path / "ground_truth/crack/000_mask.png"
    assert good_image_files([tmp_path]) == [tmp_path / "train/good/000.png"]


def test_csv_labels(tmp_path):
    _touch_image(tmp_path / "x.png")
    (tmp_path / "labels.csv").write_text("path,label\nx.png,OK\nx.png,NG\n")
    assert [s.label for s in read_label_csv(tmp_path / "labels.csv")] == ["good", "defect"]


def test_folder_without_labels_is_an_error(tmp_path):
    _touch_image(tmp_path / "misc/a.png")
    with pytest.raises(DatasetError, match="no labelled images"):
        discover_samples(tmp_path)
