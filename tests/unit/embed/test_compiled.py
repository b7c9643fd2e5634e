"""The compiled embedder (ONNX Runtime) against the torch embedder it was made from."""

import pytest

from simsearch.embed.compiled import CompiledEmbedder, compiled_applies
from simsearch.errors import UnknownComponentError


def test_it_is_never_built_from_a_spec_or_config():
    with pytest.raises(UnknownComponentError, match="index that keeps it"):
        CompiledEmbedder.from_spec("resnet18")
    with pytest.raises(UnknownComponentError, match="index that keeps it"):
        CompiledEmbedder.from_config({})


def test_where_a_compiled_copy_applies(tmp_path):
    import hashlib

    assert compiled_applies(None, {"device": "cpu", "batch_size": 8})
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"the weights the index was built with")
    recorded = {"weights_source": f"file:{hashlib.sha256(weights.read_bytes()).hexdigest()}"}
    assert compiled_applies(weights, {"device": "cpu"}, recorded)  # the same file, named again: the copy has it
    # another weights file, or one that is not there, is torch's to load (and to refuse with its own error)
    assert not compiled_applies(weights, {"device": "cpu"}, {"weights_source": "file:0123"})
    assert not compiled_applies(tmp_path / "missing.pth", {"device": "cpu"}, recorded)
    assert not compiled_applies(weights, {"device": "cpu"}, {"weights_source": "torchvision:resnet18"})
    assert not compiled_applies(None, {"device": "cuda"})
    assert not compiled_applies(None, {"device": "cpu", "precision": "bfloat16"})
    assert not compiled_applies(None, {"device": "cpu", "channels_last": True})
    assert not compiled_applies(None, {"device": "cpu", "something_new": 1})
