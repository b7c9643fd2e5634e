"""Old home of the labelled-set jobs, kept for one release: use `simsearch.evaluate.evaluate_dataset` and
`Inspector.calibrate` (or `simsearch.inspector.calibrate_index`)."""

from simsearch.evaluate.evaluation import evaluate_dataset, maps_and_masks, score_samples
from simsearch.inspector import calibrate_index, leave_one_out_scores

__all__ = ["calibrate_index", "evaluate_dataset", "leave_one_out_scores", "maps_and_masks", "score_samples"]
