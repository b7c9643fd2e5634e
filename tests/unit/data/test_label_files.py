"""Labels files as they come (issue 28: ELPV's original labels.csv; issue 29 item 11: UTF-16, Latin-1,
binary, huge fields): read them, or refuse in one line naming what was expected."""

from pathlib import Path

import pytest
from PIL import Image

from simsearch.data.datasets import DatasetError, discover_samples, read_label_csv


def _images(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(root / name)


def test_elpv_original_labels_file_is_read(tmp_path):
    # ELPV's own file: no header, columns separated by runs of spaces
    _images(tmp_path, "images/cell0001.png", "images/cell0002.png", "images/cell0003.png")
    (tmp_path / "labels.csv").write_text("images/cell0001.png  1.0  mono\nimages/cell0002.png  0.0  poly\n"
                                         "images/cell0003.png  0.3333333333333333  mono\n")
    samples = discover_samples(tmp_path / "labels.csv")
    assert [(s.path.name, s.label, s.defect_type) for s in samples] == [
        ("cell0001.png", "defect", None), ("cell0002.png", "good", None), ("cell0003.png", "good", None)]
    assert samples[0].path == tmp_path / "images/cell0001.png"


def test_an_unknown_headerless_file_names_both_formats(tmp_path):
    (tmp_path / "labels.csv").write_text("a.png;good\nb.png;bad\n")
    with pytest.raises(DatasetError, match="ELPV's original labels.csv") as error:
        read_label_csv(tmp_path / "labels.csv")
    assert "header row with a path column" in str(error.value) and "\n" not in str(error.value)


def test_utf16_with_bom_is_read(tmp_path):
    _images(tmp_path, "é.png")
    (tmp_path / "labels.csv").write_text("path,label\né.png,ng\n", encoding="utf-16")
    assert [(s.path.name, s.label) for s in read_label_csv(tmp_path / "labels.csv")] == [("é.png", "defect")]


@pytest.mark.parametrize("content, expected", [
    ("path,label\ncaf\xe9.png,good\n".encode("latin-1"), r"csv:2: byte 0xe9 is not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "NUL bytes"),
    (b"path,label\n" + b"x" * 200_000 + b".png,good\n", "field larger than field limit"),
    (b'path,label\n"a.png,good\n' + b"y" * 200_000, "field larger than field limit"),
    (b"path,defect_probability\na.png,nan\n", r"not a number in \[0, 1\]"),
])
def test_unreadable_label_files_are_one_line_errors(tmp_path, content, expected):
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(DatasetError, match=expected) as error:
        read_label_csv(tmp_path / "labels.csv")
    assert "\n" not in str(error.value) and len(str(error.value)) < 400
