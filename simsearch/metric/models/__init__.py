"""Pure torch modules of the metric-learning embedders."""

from simsearch.metric.models.autoencoder import ConvAutoencoder
from simsearch.metric.models.projection_head import ProjectionHead

__all__ = ["ConvAutoencoder", "ProjectionHead"]
