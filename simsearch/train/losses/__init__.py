"""Metric-learning losses (one per module)."""

from simsearch.train.losses.triplet_margin import TripletMarginLoss

__all__ = ["TripletMarginLoss"]
