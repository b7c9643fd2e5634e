"""Issue 12 (data side): labelled folders index defects as defects, symlinks are walked, CSV labels are read by
header, MVTec masks are never inputs."""

import pytest

from simsearch.data.datasets import exemplar_samples, read_label_csv
from simsearch.data.images import list_image_files


def test_on_the_shared_data():
    from simsearch.data.datasets import count_by_class
    from tests.conftest import BOTTLE, ELPV

    missing = [p for p in (BOTTLE, ELPV) if not p.exists()]
    if missing:
        pytest.skip(f"../shared material absent: {missing}")
    assert count_by_class(exemplar_samples([ELPV])) == {"good": 700, "defect": 350}  # no defect indexed as good
    assert count_by_class(read_label_csv(ELPV / "labels.csv")) == {"good": 700, "defect": 350}  # no mono/poly types
    assert count_by_class(exemplar_samples([BOTTLE])) == {"good": 209}  # train/good
    inputs = list_image_files([BOTTLE])
    assert len(inputs) == 209 + 83 and not any(p.name.endswith("_mask.png") for p in inputs)
