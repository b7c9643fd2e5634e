"""Issue 29 item 14: a baseline folder's files, old-style (`index` at the top of baseline.json) or new, lie
inside it."""

from __future__ import annotations

import pytest
import torch

from simsearch.baselines.learned import NAME
from simsearch.baselines.persist import BaselineError, load_baseline, write_baseline


@pytest.mark.parametrize("config", [lambda outside: {"index": str(outside)},
                                    lambda outside: {"index": "../elsewhere"},
                                    lambda outside: {"files": {"index": "link"}}])
def test_an_index_outside_the_model_folder_is_refused(tmp_path, config):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder = tmp_path / "model"
    write_baseline(folder, {"kind": NAME, "backbone": {"kind": "backbone"}, **config(outside)},
                   {"saved": torch.zeros(1)})
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BaselineError, match="a model folder only uses its own files"):
        load_baseline(folder)
