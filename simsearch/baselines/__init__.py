"""Supervised baselines (small CNN, CAM classifier, backbone probe) and the side-by-side comparison with kNN."""
