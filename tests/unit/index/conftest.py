"""The index hands new exemplars to its scoring mode's `bank`: register the built-in modes for these tests."""

import simsearch.score.modes  # noqa: F401
