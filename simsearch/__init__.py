"""simsearch: metric-learning similarity search for visual inspection.

images -> embedder -> vectors -> index -> scores -> threshold -> verdict
"""

from simsearch.datasets import Sample, discover_samples
from simsearch.embedder import Embedder, create_embedder
from simsearch.index import ExemplarIndex
from simsearch.inspector import Inspector
from simsearch.scoring import ScoreResult

__version__ = "0.1.0"
__all__ = ["Embedder", "ExemplarIndex", "Inspector", "Sample", "ScoreResult", "create_embedder",
           "discover_samples", "__version__"]
