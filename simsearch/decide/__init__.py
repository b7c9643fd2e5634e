"""Decide: the typed Threshold and the policies that choose it (F1, target recall, max false alarm, good-only)."""
