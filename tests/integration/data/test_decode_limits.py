"""Decoding untrusted images: 16-bit without float64 copies, large images reduced on decode within a memory
budget, the pixel cap from the header without process-wide state, EXIF orientation, first-frame notes,
and the limits on defect types."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
from PIL import Image

from tests.conftest import ROOT


def test_an_image_over_pillows_warning_and_under_the_cap_is_read_reduced_without_its_warning(tmp_path):
    """Issue 29, item 17: 96 MP is over Pillow's 89.5 MP warning and under simsearch's 100 MP cap. The CLI's path
    (iter_items, iter_loaded) decodes it reduced, as the service does, keeps its original size for the boxes,
    and prints nothing of Pillow's."""
    from simsearch.data.images import DECODE_MAX_SIDE
    from simsearch.data.inputs import iter_items, iter_loaded

    height, width = 8000, 12000
    rows = (np.arange(height, dtype=np.uint16)[:, None] // 32 + np.arange(width, dtype=np.uint16)[None, :] // 32)
    big = tmp_path / "big.png"
    Image.fromarray((rows % 256).astype(np.uint8)).save(big, compress_level=1)
    del rows
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30), "white").save(small)
    assert width * height > Image.MAX_IMAGE_PIXELS
    tracemalloc.start()
    try:
        items = list(iter_items([big])) + list(iter_loaded([big, small], workers=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    for item in items[:2]:
        assert item.size == (height, width) and max(item.pixels.shape[:2]) <= DECODE_MAX_SIDE
    assert items[2].size == (30, 40)
    # the arrays held (Pillow's own buffer is not traced): the full image as RGB would be 288 MB, its gray view 96
    assert peak < 32 << 20
    # as a user runs it (pytest changes the warning filters of its own process): nothing of Pillow's on stderr
    code = "import sys; from simsearch.data.inputs import iter_items; print(next(iter_items([sys.argv[1]])).size)"
    run = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0 and run.stdout.strip() == f"({height}, {width})", run.stderr
    assert "DecompressionBomb" not in run.stderr and run.stderr.strip() == ""
