"""`simsearch.load(folder)`: open any saved Scorer, the kNN index (manifest.json) or a baseline (baseline.json)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsearch.errors import IndexProblem

if TYPE_CHECKING:  # importing this module stays light; loading a model pulls torch in
    from simsearch.score.scorer import Scorer


def load(folder: str | Path, weights: str | Path | None = None, **runtime: Any) -> "Scorer":
    """The Inspector or baseline saved in `folder`; both score with `iter_score` and carry `threshold_`."""
    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        from simsearch.inspector import Inspector
        return Inspector.load(folder, weights=weights, **runtime)
    if (folder / "baseline.json").is_file():
        from simsearch.baselines.persist import load_baseline
        return load_baseline(folder, weights=weights, **runtime)
    what = ("does not exist" if not folder.exists()
            else "holds neither an index (manifest.json) nor a baseline (baseline.json)")
    raise IndexProblem(f"{folder} {what}", hint="build one with `simsearch build-index` or `simsearch train-baseline`")
