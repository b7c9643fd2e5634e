"""Train (a side branch): triplet losses, miners, samplers, augmentation, one training loop and its tasks."""
