"""Metric learning: triplet losses, miners, class-balanced sampling, augmentation, ROI crops and trainers."""
