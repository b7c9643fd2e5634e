"""Data: reading images (size caps), inputs and batches, labelled layouts (folders, MVTec, CSV), splits, transforms."""
