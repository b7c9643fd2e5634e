"""Issue 28 (no silent wrong answers on real folder layouts and thin calibration data) and issue 29 items
10, 11, 13, as a user meets them through the CLI."""

import numpy as np
import pytest
from PIL import Image

from tests.cli_runner import FAST, run_cli
from tests.conftest import part_image, write_parts


def _one_line_error(result) -> bool:
    return result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def tiles(tmp_path):
    """Magnetic-tile style: good/, defect/spot/, ground_truth/{good,spot}/ masks, extra/derived_crops/ NG
    crops and uncertain/ cells."""
    root = write_parts(tmp_path / "tiles", seed=3, n_good=8, n_defect=3)
    rng = np.random.default_rng(4)
    for name, defect in (("extra/derived_crops/ng_0.png", True), ("uncertain/u_0.png", False)):
        (root / name).parent.mkdir(parents=True)
        Image.fromarray(part_image(rng, defect=defect)).save(root / name)
    for folder, count in (("good", 8), ("spot", 3)):
        (root / "ground_truth" / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (64, 64)).save(root / "ground_truth" / folder / f"{i:02d}_mask.png")
    return root


def test_defects_given_a_labelled_parent_is_refused(tiles, tmp_path):
    result = run_cli("build-index", tiles / "good", "--defects", tiles, "--out", tmp_path / "index", *FAST)
    assert result.exit_code == 2 and _one_line_error(result)
    assert "good/ folder" in result.stderr and "--defects" in result.stderr
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize("wait", ["nan", "-1", "inf"])
def test_wait_must_be_finite_and_not_negative(wait, part_folder, tmp_path):
    result = run_cli("build-index", part_folder / "good", "--out", tmp_path / "index", "--wait", wait, *FAST)
    assert result.exit_code == 2 and _one_line_error(result) and "--wait" in result.stderr
    assert not (tmp_path / "index").exists()  # refused before any work
    from simsearch.errors import InputError
    from simsearch.index.lock import IndexLock

    with pytest.raises(InputError, match="not a finite number"):  # the library (and the service) too
        IndexLock(tmp_path, wait=float(wait))
