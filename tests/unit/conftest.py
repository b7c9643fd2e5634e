"""Unit tests build no model: a torch module constructed while one runs (its fixtures of any scope included) fails
it; tests that need a model belong in tests/integration."""

from __future__ import annotations

import builtins
import sys
import threading
from contextlib import contextmanager

import pytest

MOVE = "move the test to tests/integration"
BUILT = pytest.StashKey[list]()  # the models refused in the running phase; the guard's own test reads it


def _loaded_torch():
    """torch once its import has finished (None before, or while it is still running)."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return None
    return torch


@contextmanager
def _refusing_models(built: list[str]):
    """Refuse `torch.nn.Module.__init__` for the duration: at once where torch is loaded, else from the moment an
    import loads it (torch is never imported for the check). What was refused is also recorded in `built`, since
    the code under test may catch the AssertionError."""
    undo = []

    def refuse(module, *args, **kwargs):
        built.append(type(module).__name__)
        raise AssertionError(f"a unit test built a torch model ({type(module).__name__}): {MOVE}")

    def guard(torch):
        original = torch.nn.Module.__init__
        torch.nn.Module.__init__ = refuse
        undo.append(lambda: setattr(torch.nn.Module, "__init__", original))

    torch = _loaded_torch()
    if torch is not None:
        guard(torch)
    else:
        plain_import = builtins.__import__
        depth = threading.local()

        def watching_import(*args, **kwargs):
            depth.n = getattr(depth, "n", 0) + 1
            try:
                return plain_import(*args, **kwargs)
            finally:
                depth.n -= 1
                loaded = _loaded_torch() if depth.n == 0 else None
                if loaded is not None and builtins.__import__ is watching_import:
                    builtins.__import__ = plain_import
                    guard(loaded)

        builtins.__import__ = watching_import
        undo.append(lambda: builtins.__import__ is watching_import and setattr(builtins, "__import__", plain_import))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


# hook wrappers rather than an autouse fixture: module- and session-scoped fixtures are set up before any
# function-scoped one, and a model built there must be refused too
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _guarded(item))


def _guarded(item):
    built = item.stash[BUILT] = []
    with _refusing_models(built):
        result = yield
    if built:
        raise AssertionError(f"a unit test built torch model(s) {', '.join(sorted(set(built)))}: {MOVE}")
    return result


@pytest.fixture(scope="session")
def small_embedder():
    """The shared ResNet-18 is a model: a unit test that asks for it fails (even where another test built it)."""
    raise AssertionError(f"small_embedder builds a model: {MOVE}")
