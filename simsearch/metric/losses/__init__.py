"""Metric-learning losses (one per module)."""

from simsearch.metric.losses.triplet_margin import TripletMarginLoss

__all__ = ["TripletMarginLoss"]
