"""Fixtures for the service tests: a small random-weight index, an app over a private copy of it, PNG bytes."""

from __future__ import annotations

import copy
import io
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from tests.conftest import part_image

TOKEN = "test-token-0123456789abcdef"


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def served_index(small_embedder, tmp_path_factory):
    """(inspector, folder): 10 good and 2 defect synthetic parts, saved."""
    from simsearch.inspector import Inspector

    rng = np.random.default_rng(7)
    inspector = Inspector(small_embedder).fit([part_image(rng) for _ in range(10)])
    inspector.add([part_image(rng, defect=True) for _ in range(2)], "defect", defect_type="spot")
    folder = tmp_path_factory.mktemp("served") / "index"
    inspector.save(folder)
    return inspector, folder


@pytest.fixture
def index_copy(served_index, tmp_path):
    """(inspector, folder) private to one test: changes go to a copy of the index."""
    inspector, folder = served_index
    target = tmp_path / "index"
    shutil.copytree(folder, target)
    private = copy.copy(inspector)
    private.index_ = inspector.index_.copy()
    return private, target


def make_client(index_copy, **settings):
    with warnings.catch_warnings():  # newer Starlette nags about httpx vs httpx2; both work for these tests
        warnings.filterwarnings("ignore", message="Using `httpx` with")
        from fastapi.testclient import TestClient

    from simsearch.service.app import create_app
    from simsearch.service.settings import ServiceSettings

    inspector, folder = index_copy
    return TestClient(create_app(inspector, ServiceSettings(**settings), folder=folder))


@pytest.fixture
def client(index_copy):
    with make_client(index_copy, token=TOKEN) as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


@pytest.fixture
def images():
    rng = np.random.default_rng(11)
    return {"good": part_image(rng), "defect": part_image(rng, defect=True)}
