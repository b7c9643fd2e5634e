"""The Runtime value: one default batch size, checked fields, the library's keywords made into one, and what
embedders are given of it."""

from __future__ import annotations

import dataclasses

import pytest

from simsearch.errors import InputError
from simsearch.runtime import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, Runtime


def test_the_defaults_and_the_keywords_that_change_them():
    runtime = Runtime()
    assert (runtime.device, runtime.batch_size, runtime.precision, runtime.workers, runtime.compiled) == \
        (None, DEFAULT_BATCH_SIZE, "float32", DEFAULT_WORKERS, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.batch_size = 4
    # a keyword left at None keeps the value it would change: the library's `batch_size=None` means the default
    assert Runtime.of(batch_size=None, device=None) == runtime
    changed = Runtime.of(Runtime(device="cpu"), batch_size=8, compiled=False)
    assert (changed.device, changed.batch_size, changed.compiled) == ("cpu", 8, False)
    assert Runtime(device="").device is None


def test_what_embedders_are_given():
    assert Runtime().embedder_options() == {"batch_size": DEFAULT_BATCH_SIZE}
    assert Runtime(device="cpu", batch_size=4, precision="bfloat16").embedder_options() == \
        {"batch_size": 4, "device": "cpu", "precision": "bfloat16"}


@pytest.mark.parametrize("options, parameter", [({"batch_size": 0}, "batch_size"), ({"precision": "int4"}, "precision"),
                                                ({"workers": -1}, "workers")])
def test_a_wrong_field_is_refused_naming_its_parameter(options, parameter):
    with pytest.raises(InputError) as raised:
        Runtime(**options)
    assert raised.value.parameter == parameter


def test_an_unknown_keyword_is_refused():
    with pytest.raises(InputError, match="unknown runtime option"):
        Runtime.of(batchsize=8)
