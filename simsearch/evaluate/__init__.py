"""Evaluate: metrics (binary, image and pixel AUROC, PRO) and the evaluation of any Scorer on a labelled set."""
