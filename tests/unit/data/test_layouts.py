"""Real folder layouts (issue 28 items 1-3): masks are labels, never parts; a labelled folder indexes its
good and defect images only; --defects refuses a labelled parent."""

from pathlib import Path

import pytest
from PIL import Image

from simsearch.data.datasets import (
    DatasetError,
    count_by_class,
    discover_samples,
    exemplar_selection,
    typed_defect_samples,
)
from simsearch.data.images import list_image_files


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(path)


def _magnetic_tile(root: Path) -> Path:
    """good/, defect/<type>/, ground_truth/<type>/ (all-black masks for the goods too), an extra/ folder of
    derived NG crops, uncertain/ cells and masks beside some images."""
    _touch(root, "good/001.png", "good/002.png", "good/003.png",
           "defect/crack/010.png", "defect/crack/011.png", "defect/blowhole/020.png", "defect/blowhole/020_mask.png",
           "ground_truth/good/001.png", "ground_truth/good/002.png", "ground_truth/good/003.png",
           "ground_truth/crack/010_mask.png", "ground_truth/crack/011_mask.png",
           "extra/derived_crops/ng_001.png", "uncertain/030.png", "masks/040.png", "Labels_png/041.png")
    return root


def test_discovery_never_counts_masks_as_parts(tmp_path):
    root = _magnetic_tile(tmp_path / "tiles")
    samples = discover_samples(root)
    assert count_by_class(samples) == {"good": 3, "crack": 2, "blowhole": 1}
    by_name = {s.path.name: s for s in samples}
    assert by_name["010.png"].mask_path == root / "ground_truth/crack/010_mask.png"
    assert by_name["020.png"].mask_path == root / "defect/blowhole/020_mask.png"  # beside the image
    assert by_name["001.png"].mask_path is None


def test_a_tree_of_masks_alone_gives_no_parts(tmp_path):
    # evaluate once scored only masks: "20 images (20 good, 0 defect)"
    _touch(tmp_path, "set/ground_truth/good/a.png", "set/ground_truth/defect/b_mask.png")
    with pytest.raises(DatasetError, match="no labelled images"):
        discover_samples(tmp_path / "set")


def test_walking_a_folder_skips_masks_whatever_the_tree_is_called(tmp_path):
    root = _magnetic_tile(tmp_path / "tiles")
    names = {str(p.relative_to(root)) for p in list_image_files([root])}
    assert names == {"good/001.png", "good/002.png", "good/003.png", "defect/crack/010.png",
                     "defect/crack/011.png", "defect/blowhole/020.png", "extra/derived_crops/ng_001.png",
                     "uncertain/030.png"}
    _touch(tmp_path, "labelled/good/a.png")  # a data folder named "labelled" is not a mask folder
    assert len(list_image_files([tmp_path / "labelled"])) == 1
    assert list_image_files([root / "masks/040.png"]) == [root / "masks/040.png"]  # named: kept


def test_labelled_folder_indexes_good_and_defect_only_and_says_what_it_left_out(tmp_path):
    root = _magnetic_tile(tmp_path / "tiles")
    samples, left_out = exemplar_selection([root])
    assert count_by_class(samples) == {"good": 3, "crack": 2, "blowhole": 1}
    assert all("ground_truth" not in s.path.parts and "extra" not in s.path.parts for s in samples)
    reasons = {(Path(e.where).name, e.count): e.reason for e in left_out}
    assert reasons[("ground_truth", 5)].startswith("masks are labels")
    assert reasons[("masks", 1)] == reasons[("Labels_png", 1)] == reasons[("defect", 1)]
    assert "not in a good" in reasons[("extra", 1)] and "not in a good" in reasons[("uncertain", 1)]


def test_unlabelled_folder_keeps_its_images_as_good_but_not_its_masks(tmp_path):
    _touch(tmp_path, "line/a.png", "line/b/c.png", "line/ng/dent/d.png", "line/a_mask.png")
    samples, left_out = exemplar_selection([tmp_path / "line"])
    assert count_by_class(samples) == {"good": 2, "dent": 1}
    assert [(e.count, e.reason) for e in left_out] == [(1, "masks are labels, not parts")]


def test_defects_given_a_labelled_parent_is_refused_with_the_fix(tmp_path):
    root = _magnetic_tile(tmp_path / "tiles")
    with pytest.raises(DatasetError, match="good/ folder") as error:
        typed_defect_samples([root])
    assert error.value.parameter == "defects" and "labelled folder" in error.value.hint
    # the defect folder itself, and a parent holding only defect/<type>/, keep their types
    assert count_by_class(typed_defect_samples([root / "defect"])) == {"crack": 2, "blowhole": 1}
    _touch(tmp_path, "only/defect/dent/a.png", "only/defect/b.png")
    assert count_by_class(typed_defect_samples([tmp_path / "only"])) == {"dent": 1, "defect": 1}
