"""simsearch: metric-learning similarity search for visual inspection.

images -> embedder -> vectors -> index -> scores -> threshold -> verdict
"""

import os

# torch and FAISS each keep an OpenMP thread pool; spinning, they starve each other on small CPUs (about 8x
# slower scoring on 2 cores). Set before either loads; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from simsearch.datasets import Sample, discover_samples  # noqa: E402
from simsearch.embedder import Embedder, create_embedder
from simsearch.index import ExemplarIndex
from simsearch.inspector import Inspector
from simsearch.scoring import ScoreResult

__version__ = "0.1.0"
__all__ = ["Embedder", "ExemplarIndex", "Inspector", "Sample", "ScoreResult", "create_embedder",
           "discover_samples", "__version__"]
