"""The two metric-learning trainers: the triplet autoencoder and the triplet head on a frozen backbone."""
