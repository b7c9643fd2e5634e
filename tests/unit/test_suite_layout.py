"""The suite's own split: every test file lives under tests/unit (no model built, fast) or tests/integration
(models, the CLI and service embedding, browsers, Ray, ../shared data), and a unit test that builds a torch model
fails."""

import importlib.util
from pathlib import Path

import pytest

from tests.unit.conftest import BUILT

TESTS = Path(__file__).resolve().parents[1]
SHARED_HELPERS = ("conftest.py", "__init__.py", "cli_runner.py")  # used by both halves, hold no tests


def test_every_test_file_is_under_unit_or_integration():
    misplaced = [path.relative_to(TESTS).as_posix() for path in TESTS.rglob("*.py")
                 if path.relative_to(TESTS).parts[0] not in ("unit", "integration")
                 and path.relative_to(TESTS).as_posix() not in SHARED_HELPERS]
    assert misplaced == [], f"move these under tests/unit or tests/integration: {misplaced}"


def test_a_torch_model_built_in_a_unit_test_is_refused(request):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: nothing to guard")
    import torch

    with pytest.raises(AssertionError, match="built a torch model"):
        torch.nn.Linear(2, 2)
    assert request.node.stash[BUILT] == ["Linear"]
    request.node.stash[BUILT].clear()  # refused on purpose here: the guard would fail this test after its call


def test_a_unit_test_cannot_have_the_shared_model(request):
    with pytest.raises(AssertionError, match="small_embedder builds a model"):
        request.getfixturevalue("small_embedder")
