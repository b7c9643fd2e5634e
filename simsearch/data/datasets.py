"""Labelled image folders: good/defect trees, the MVTec AD layout, and `path,label` CSV files."""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from simsearch.data.images import MASK_NAME_ENDINGS, find_image_files, is_image_file, list_image_files
from simsearch.errors import InputError

GOOD_NAMES = frozenset({"good", "ok", "normal"})
DEFECT_NAMES = frozenset({"defect", "defects", "ng", "bad", "anomaly", "anomalies", "defective"})
GOOD, DEFECT = "good", "defect"


class DatasetError(InputError):
    """A folder or file list that does not form the expected data set."""


MAX_NAME_LENGTH = 64  # a defect type names a kind of defect; anything longer is a mistake or an attack


def check_defect_type(text: str | None, parameter: str = "defect_type") -> str | None:
    """A defect type as stored (stripped; empty: None), or InputError when it is longer than MAX_NAME_LENGTH
    characters or holds control characters (NUL, newlines, escapes); every face calls this through the index."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if len(text) > MAX_NAME_LENGTH:
        raise InputError(f"defect type {text[:20]!r}... is {len(text)} characters long, over {MAX_NAME_LENGTH}",
                         hint="shorten {param}", parameter=parameter)
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in text):
        raise InputError(f"defect type {text!r} holds control or unassigned characters",
                         hint="use printable characters in {param}", parameter=parameter)
    return text


@dataclass(frozen=True)
class Sample:
    """One labelled image: its file, good/defect, the defect type where known, and its mask file if any."""

    path: Path
    label: str
    defect_type: str | None = None
    mask_path: Path | None = None

    @property
    def is_defect(self) -> bool:
        return self.label == DEFECT


def normalise_label(text: str) -> str:
    """Map good/ok/normal/0 and defect/ng/bad/anomaly/1 (any case) to 'good' or 'defect'."""
    word = text.strip().lower()
    if word in GOOD_NAMES or word in {"0", "0.0", "false"}:
        return GOOD
    if word in DEFECT_NAMES or word in {"1", "1.0", "true"}:
        return DEFECT
    shown = repr(text) if len(text) <= MAX_NAME_LENGTH else f"{text[:20]!r}... ({len(text)} characters)"
    raise DatasetError(f"unknown label {shown}: use good/ok/normal or defect/ng/bad/anomaly")


def is_mvtec_root(root: Path) -> bool:
    """True for an MVTec AD category folder (train/good and/or test/ beside it)."""
    return (root / "test").is_dir() and ((root / "train").is_dir() or (root / "ground_truth").is_dir())


def mvtec_good_folder(root: Path) -> Path | None:
    """The train/good folder of an MVTec AD category, or None when root is not one."""
    candidate = root / "train" / "good"
    return candidate if is_mvtec_root(root) and candidate.is_dir() else None


def _mvtec_test_samples(test_dir: Path, ground_truth: Path | None) -> list[Sample]:
    samples: list[Sample] = []
    for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        is_good = type_dir.name.lower() in GOOD_NAMES
        for path in list_image_files([type_dir]):
            mask = None
            if not is_good and ground_truth is not None:
                candidate = ground_truth / type_dir.name / f"{path.stem}_mask.png"
                mask = candidate if candidate.is_file() else None
            samples.append(Sample(path, GOOD if is_good else DEFECT, None if is_good else type_dir.name, mask))
    return samples


def _tree_label(parts: Sequence[str]) -> tuple[str | None, str | None]:
    """(label, defect type) from the folders between a labelled root and an image: the first folder named
    good/ok/normal or defect/ng/bad/anomaly decides, and the folder below a defect folder names the type."""
    for position, part in enumerate(parts):
        if part.lower() in GOOD_NAMES:
            return GOOD, None
        if part.lower() in DEFECT_NAMES:
            below = parts[position + 1:]
            return DEFECT, below[0] if below else None
    return None, None


def _mask_key(mask: Path) -> str:
    stem = mask.stem
    for ending in MASK_NAME_ENDINGS:
        if stem.lower().endswith(ending):
            return stem[:-len(ending)]
    return stem


def _mask_finder(masks: Sequence[Path]):
    """A lookup of a defect image's mask among a tree's mask files: the mask of the same stem in a folder
    named as its type (ground_truth/<type>/003_mask.png, or beside it), else the only mask of that stem."""
    by_folder: dict[tuple[str, str], Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for mask in masks:
        key = _mask_key(mask)
        by_folder.setdefault((mask.parent.name, key), mask)
        by_stem.setdefault(key, []).append(mask)

    def find(path: Path, defect_type: str | None) -> Path | None:
        for folder in (defect_type, path.parent.name):
            if folder is not None and (folder, path.stem) in by_folder:
                return by_folder[(folder, path.stem)]
        same = by_stem.get(path.stem, [])
        return same[0] if len(same) == 1 else None

    return find


def _labelled_tree_samples(root: Path) -> list[Sample]:
    """Images below good/ok/normal folders (good) and defect/ng/bad/anomaly folders (defects, typed by the
    next folder down); masks are never samples, and a defect's mask is found where the tree keeps one."""
    images, masks = find_image_files(root)
    find_mask = _mask_finder(masks)
    samples: list[Sample] = []
    for path in images:
        label, defect_type = _tree_label(path.relative_to(root).parts[:-1])
        if label is not None:
            samples.append(Sample(path, label, defect_type,
                                  find_mask(path, defect_type) if label == DEFECT and masks else None))
    return samples


def discover_samples(root: str | Path) -> list[Sample]:
    """Find the labelled images under root: an MVTec category or test tree, or good/defect folders.

    MVTec: `test/good` is good, `test/<type>` a defect of that type, masks from `ground_truth/<type>/`.
    Otherwise any folder named good/ok/normal holds good images and any named defect/ng/bad/anomaly
    holds defects, with an optional `<type>/` subfolder below it.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_label_csv(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if is_mvtec_root(root):
        ground_truth = root / "ground_truth"
        samples = _mvtec_test_samples(root / "test", ground_truth if ground_truth.is_dir() else None)
    elif root.name.lower() == "test" and (root.parent / "ground_truth").is_dir():
        samples = _mvtec_test_samples(root, root.parent / "ground_truth")
    else:
        samples = _labelled_tree_samples(root)
    if not samples:
        raise DatasetError(
            f"{root}: found no labelled images; expected good/ and defect/ (or ok/ng, normal/anomaly) "
            "folders, or an MVTec AD category"
        )
    return samples


PATH_COLUMNS = ("path", "file", "filename", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "is_defect", "defect")
PROBABILITY_COLUMNS = ("defect_probability",)  # ELPV's own labels.csv: a defect when >= 0.5
TYPE_COLUMNS = ("type", "defect_type")


def _column(header: list[str], names: Sequence[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


MAX_LABEL_FILE_BYTES = 256 * 1024 * 1024  # a labels file lists paths; one this large is not one


def _label_file_text(csv_path: Path) -> str:
    """A labels file's text: UTF-8 (with or without BOM) or UTF-16 with its BOM; anything else (Latin-1,
    a binary file) is a one-line DatasetError naming the line, not a decode traceback."""
    size = csv_path.stat().st_size
    if size > MAX_LABEL_FILE_BYTES:
        raise DatasetError(f"{csv_path}: {size / 1e6:.0f} MB is too large for a labels file (a path and a label "
                           "per line)")
    data = csv_path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DatasetError(f"{csv_path}: starts like UTF-16 text but is not; save it as UTF-8") from None
    if b"\x00" in data:
        raise DatasetError(f"{csv_path}: holds NUL bytes, so it is not a text file; expected a labels CSV "
                           "saved as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DatasetError(f"{csv_path}:{line}: byte 0x{data[error.start]:02x} is not UTF-8 (a Latin-1 or "
                           "Windows file?); save the file as UTF-8") from None


def _split_rows(csv_path: Path, text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as error:  # a field over csv's 128 KB limit, a NUL, a stray quote
        raise DatasetError(f"{csv_path}:{reader.line_num}: {error}; expected a labels CSV (a path and a label "
                           "per line)") from None


def _elpv_original_rows(text: str) -> list[list[str]] | None:
    """ELPV's own labels.csv (no header, columns separated by spaces: `images/cell0001.png  1.0  mono`) as
    rows of path, defect probability and cell type; None when the text is not in that format."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        return None
    for row in rows:
        if len(row) not in (2, 3) or not is_image_file(Path(row[0])):
            return None
        try:
            float(row[1])
        except ValueError:
            return None
    return rows


EXPECTED_LABEL_FORMAT = (f"expected a header row with a path column ({'/'.join(PATH_COLUMNS)}) and a label column "
                         f"({'/'.join(LABEL_COLUMNS)}, or defect_probability), optionally {'/'.join(TYPE_COLUMNS)}; "
                         "or ELPV's original labels.csv (no header, space separated: path probability type)")


def read_label_csv(csv_path: str | Path) -> list[Sample]:
    """Read a labels CSV by its header names (paths relative to the CSV's folder): a path column (path, file,
    filename, image), a label column (label, class, is_defect: good/ok/0 or defect/ng/1) or ELPV's
    defect_probability (>= 0.5 is a defect), and optionally a defect type column (type, defect_type). Other
    columns (ELPV's cell_type) are ignored. ELPV's original labels.csv (no header, space separated: path,
    probability, cell type) is read too; anything else is refused, naming the formats expected. UTF-8 or
    UTF-16 with a BOM."""
    csv_path = Path(csv_path)
    samples: list[Sample] = []
    text = _label_file_text(csv_path)
    rows = _split_rows(csv_path, text)
    header = [name.strip().lower() for name in rows[0]] if rows else []
    path_at, type_at = _column(header, PATH_COLUMNS), _column(header, TYPE_COLUMNS)
    label_at, probability_at = _column(header, LABEL_COLUMNS), _column(header, PROBABILITY_COLUMNS)
    if path_at is None or (label_at is None and probability_at is None):
        original = _elpv_original_rows(text)
        if original is None:
            shown = ",".join(rows[0])[:80] if rows else "(empty file)"
            raise DatasetError(f"{csv_path}: header {shown!r} not understood; {EXPECTED_LABEL_FORMAT}")
        header = ["path", "defect_probability", "cell_type"]
        rows = [header] + original
        path_at, type_at, label_at, probability_at = 0, None, None, 1
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        needed = max(i for i in (path_at, label_at, probability_at) if i is not None)
        if len(row) <= needed or not row[path_at].strip():
            shown = repr(row) if len(repr(row)) <= 120 else repr(row)[:100] + "..."
            raise DatasetError(f"{csv_path}:{number}: expected {len(header)} columns ({','.join(header)}), "
                               f"got {shown}")
        path = Path(row[path_at].strip())
        path = path if path.is_absolute() else csv_path.parent / path
        if label_at is not None:
            label = normalise_label(row[label_at])
        else:
            try:
                probability = float(row[probability_at])
            except ValueError:
                probability = math.nan
            if not 0.0 <= probability <= 1.0:
                shown = row[probability_at] if len(row[probability_at]) <= 40 else row[probability_at][:40] + "..."
                raise DatasetError(f"{csv_path}:{number}: defect_probability {shown!r} is not a number in "
                                   "[0, 1]") from None
            label = DEFECT if probability >= 0.5 else GOOD
        kind = row[type_at].strip() if type_at is not None and type_at < len(row) else ""
        samples.append(Sample(path, label, check_defect_type(kind) if kind and label == DEFECT else None))
    if not samples:
        raise DatasetError(f"{csv_path}: no rows")
    return samples


def typed_defect_samples(paths: Iterable[str | Path], defect_type: str | None = None) -> list[Sample]:
    """Defect exemplars from files/folders: the first subfolder below a given folder names the type (below a
    folder named defect/ng/bad/anomaly, the one under it). A subfolder named like a good folder is refused:
    the folder is a labelled set (good/ beside defect/), not a folder of defects."""
    samples: list[Sample] = []
    for item in paths:
        item = Path(item)
        for path in list_image_files([item]):
            kind = defect_type
            if kind is None and item.is_dir():
                below = list(path.relative_to(item).parts[:-1])
                while len(below) > 1 and below[0].lower() in DEFECT_NAMES:
                    below.pop(0)
                kind = below[0] if below else None
                if kind is not None and kind.lower() in DEFECT_NAMES:
                    kind = None
            if kind is not None and kind.lower() in GOOD_NAMES:
                raise DatasetError(f"{item} holds a {kind}/ folder: its images would be indexed as defects of type "
                                   f"{kind!r}", hint="give {param} the folder of defects only, or pass this labelled "
                                   "folder as the images to index (good/ is indexed as good, defect/ as defects)",
                                   parameter="defects")
            samples.append(Sample(path, DEFECT, kind))
    return samples


@dataclass(frozen=True)
class LeftOut:
    """Images under an index's source that were not indexed, and why."""

    where: str
    count: int
    reason: str


def _left_out(root: Path, paths: Sequence[Path], reason: str) -> list[LeftOut]:
    """Files grouped by their first folder below root ('extra/', or '.' for root itself)."""
    groups: dict[str, int] = {}
    for path in paths:
        parts = path.relative_to(root).parts
        where = str(root / parts[0]) + "/" if len(parts) > 1 else str(root) + "/"
        groups[where] = groups.get(where, 0) + 1
    return [LeftOut(where, count, reason) for where, count in sorted(groups.items())]


MASKS_LEFT_OUT = "masks are labels, not parts"
UNLABELLED_LEFT_OUT = "not in a good/ok/normal or defect/ng/bad/anomaly folder of this labelled set"


def _folder_exemplars(root: Path) -> tuple[list[Sample], list[LeftOut]]:
    """A folder's exemplars and what was left out. A labelled set (any good/ok/normal folder in it): images
    below good folders are good and below defect/ng/bad/anomaly folders (typed) defects; others (extra/,
    uncertain/) are left out. Otherwise every image, those below a defect folder as defects. Masks never."""
    images, masks = find_image_files(root)
    labelled = [(path, *_tree_label(path.relative_to(root).parts[:-1])) for path in images]
    left_out = _left_out(root, masks, MASKS_LEFT_OUT)
    if any(label == GOOD for _, label, _ in labelled):
        samples = [Sample(path, label, kind) for path, label, kind in labelled if label is not None]
        left_out += _left_out(root, [path for path, label, _ in labelled if label is None], UNLABELLED_LEFT_OUT)
        return samples, left_out
    return [Sample(path, label or GOOD, kind) for path, label, kind in labelled], left_out


def exemplar_selection(paths: Sequence[str | Path]) -> tuple[list[Sample], list[LeftOut]]:
    """What an index is built from, labelled, and what was left out (masks; in a labelled set, folders that
    are neither good nor defect): an MVTec category gives its train/good images; an MVTec test tree and a
    labels CSV their labelled images; a labelled folder (good/ beside defect/) its good and defect images;
    any other folder its images, those below a defect/ng/bad/anomaly folder as (typed) defects and the others
    as good; a file is good."""
    samples: list[Sample] = []
    left_out: list[LeftOut] = []
    for item in paths:
        item = Path(item)
        if item.is_file() and item.suffix.lower() == ".csv":
            samples.extend(read_label_csv(item))
        elif not item.is_dir():
            samples.extend(Sample(path, GOOD) for path in list_image_files([item]))
        elif mvtec_good_folder(item) is not None:
            samples.extend(Sample(path, GOOD) for path in list_image_files([mvtec_good_folder(item)]))
        elif item.name.lower() == "test" and (item.parent / "ground_truth").is_dir():
            samples.extend(discover_samples(item))
        elif item.name.lower() in DEFECT_NAMES:
            raise DatasetError(f"{item} is named like a folder of defects, and would be indexed as good parts",
                               hint="pass it as {param}, or its parent folder (good/ beside defect/)",
                               parameter="defects")
        else:
            found, skipped = _folder_exemplars(item)
            samples.extend(found)
            left_out.extend(skipped)
    return samples, left_out


def exemplar_samples(paths: Sequence[str | Path]) -> list[Sample]:
    """The samples of `exemplar_selection` (what an index is built from), without what was left out."""
    return exemplar_selection(paths)[0]


def good_image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The good images among exemplar_samples(paths) (never the defects of a labelled folder)."""
    return [s.path for s in exemplar_samples(paths) if not s.is_defect]


def class_key(sample: Sample) -> str:
    """A sample's class: 'good', its defect type, or 'defect' when untyped (what splits and samplers balance)."""
    return GOOD if not sample.is_defect else (sample.defect_type or DEFECT)


def class_ids(samples: Sequence[Sample]) -> tuple[list[int], list[str]]:
    """Class id per sample and the class names: 'good' is 0, then each defect type in sorted order."""
    keys = [class_key(s) for s in samples]
    names = [GOOD] + sorted({key for key, s in zip(keys, samples) if s.is_defect})
    position = {name: i for i, name in enumerate(names)}
    return [0 if not s.is_defect else position[key] for key, s in zip(keys, samples)], names


def count_by_class(samples: Sequence[Sample]) -> dict[str, int]:
    """Counts of good images and of each defect type (untyped defects under 'defect')."""
    counts: dict[str, int] = {}
    for sample in samples:
        key = class_key(sample)
        counts[key] = counts.get(key, 0) + 1
    return counts


def training_samples(root: str | Path) -> list[Sample]:
    """All labelled images of a data set; for an MVTec category train/good joins test/ (whose 83 images
    alone would leave most good images unused)."""
    samples = discover_samples(root)
    good = mvtec_good_folder(Path(root)) if Path(root).is_dir() else None
    if good is not None:
        samples = [Sample(path, GOOD) for path in list_image_files([good])] + samples
    return samples


__all__ = [
    "DEFECT", "GOOD", "DatasetError", "Sample", "class_ids", "class_key", "count_by_class", "discover_samples",
    "LeftOut", "exemplar_samples", "exemplar_selection", "good_image_files", "is_image_file", "is_mvtec_root",
    "mvtec_good_folder", "normalise_label",
    "read_label_csv", "training_samples", "typed_defect_samples",
]
