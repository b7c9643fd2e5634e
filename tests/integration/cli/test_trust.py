"""An index folder is code (issue 29, item 3): a compiled copy that reads files outside it is refused, `simsearch
verify` tells a swapped copy from the network the trusted weights give, and a configured signing key refuses a
folder changed without it."""

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from simsearch.cli.output import EXIT_INDEX
from simsearch.embed.compiled import CompiledEmbedder, UntrustedCopyError, check_self_contained
from simsearch.index.signing import SIGNING_KEY_ENV
from tests.cli_runner import run_cli
from tests.integration.cli.test_cli import built  # noqa: F401 - the fixture


def _swap_copy(index, model: bytes) -> None:
    """What the issue's attacker did: replace the compiled copy's file and fix its checksum in the manifest."""
    manifest = json.loads((index / "manifest.json").read_text())
    path = index / manifest["files"]["embedder"]
    path.write_bytes(model)
    manifest["checksums"]["embedder"] = {"bytes": len(model), "sha256": hashlib.sha256(model).hexdigest()}
    (index / "manifest.json").write_text(json.dumps(manifest))


def _copy(index) -> tuple[bytes, dict]:
    manifest = json.loads((index / "manifest.json").read_text())
    return (index / manifest["files"]["embedder"]).read_bytes(), manifest["artifacts"]["embedder"]


def _constant_model(record: dict) -> bytes:
    """A model with the copy's inputs and output shapes that gives zeros for every image."""
    dim, (gh, gw) = record["dim"], record["grid"]
    ints = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x", "all"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Unsqueeze", ["z", "one"], ["z1"]),
             helper.make_node("Expand", ["z1", "image_shape"], ["image"]),
             helper.make_node("Unsqueeze", ["z", "three"], ["z3"]),
             helper.make_node("Expand", ["z3", "patch_shape"], ["patches"])]
    graph = helper.make_graph(
        nodes, "constant", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", None, None, 3])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("patches", TensorProto.FLOAT, None)],
        [ints("all", [1, 2, 3]), ints("one", [1]), ints("three", [1, 2, 3]), ints("image_shape", [1, dim]),
         ints("patch_shape", [1, gh, gw, dim]), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def _external_data_model(model: bytes, location: str) -> bytes:
    """The copy with its largest weight read from `location` (ONNX external data), as the issue's second attack."""
    proto = onnx.load_model_from_string(model)
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    size = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def test_a_copy_with_external_data_is_refused_at_load(built, part_folder, tmp_path):  # noqa: F811
    model, record = _copy(built)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * (64 << 20))
    for location in (str(outside), "../outside.bin"):
        hostile = _external_data_model(model, location)
        with pytest.raises(UntrustedCopyError, match="external data"):
            CompiledEmbedder(hostile, record, {})
        _swap_copy(built, hostile)
        result = run_cli("score", part_folder / "good" / "00.png", "--index", built)
        assert result.exit_code == EXIT_INDEX, result.output
        assert "external data" in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_operator_outside_standard_onnx_is_refused(built):  # noqa: F811
    model, record = _copy(built)
    proto = onnx.load_model_from_string(model)
    proto.graph.node.append(helper.make_node("EPContext", ["images"], ["unused"], domain="com.microsoft",
                                             ep_cache_context="/etc/passwd", embed_mode=0))
    with pytest.raises(UntrustedCopyError, match="com.microsoft"):
        check_self_contained(proto.SerializeToString())
    check_self_contained(model)  # the copy simsearch made passes


def test_verify_passes_on_an_intact_index_and_fails_on_a_swapped_copy(built, part_folder):  # noqa: F811
    result = run_cli("verify", built, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] and {c["name"] for c in report["checks"]} >= {"fingerprint", "compiled vectors",
                                                                            "stored vectors"}
    assert all(path.startswith(str(part_folder)) for path in report["images"])  # the index's own exemplars
    assert run_cli("verify", built).stdout.strip().endswith(f"verified {built}")

    image = part_folder / "good" / "00.png"
    intact = json.loads(run_cli("score", image, "--index", built, "--json").stdout)["score"]
    _, record = _copy(built)
    _swap_copy(built, _constant_model(record))
    scored = run_cli("score", image, "--index", built, "--json")  # the attack: without a key it scores, silently
    assert scored.exit_code == 0 and json.loads(scored.stdout)["score"] != pytest.approx(intact, rel=0.01)
    result = run_cli("verify", built, "--json")
    assert result.exit_code == EXIT_INDEX, result.output
    failed = {c["name"] for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    assert failed == {"compiled vectors"}
    plain = run_cli("verify", built)
    assert plain.exit_code == EXIT_INDEX and "DIFFERS compiled vectors" in plain.stdout
    assert "compiled vectors differ" in plain.stderr


def test_verify_uses_synthetic_images_when_the_exemplar_files_are_gone(built, part_folder):  # noqa: F811
    shutil.rmtree(part_folder)
    report = json.loads(run_cli("verify", built, "--json", "--images", "3").stdout)
    assert report["verified"] and report["images"] == ["synthetic:0:0", "synthetic:0:1", "synthetic:0:2"]


def test_a_signing_key_signs_saves_and_refuses_changes_made_without_it(built, part_folder, tmp_path,  # noqa: F811
                                                                        monkeypatch):
    key = tmp_path / "keys" / "simsearch.key"
    key.parent.mkdir()
    key.write_text("0123456789abcdef0123456789abcdef")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key))
    image = part_folder / "good" / "00.png"
    unsigned = run_cli("score", image, "--index", built)  # built before the key: refused until checked and signed
    assert unsigned.exit_code == EXIT_INDEX and "is not signed" in unsigned.stderr
    assert "Traceback" not in unsigned.output
    assert run_cli("verify", built, "--json").exit_code == EXIT_INDEX  # the signature is missing: said as a difference
    signed = run_cli("verify", built, "--sign", "--json")
    assert signed.exit_code == 0 and json.loads(signed.stdout)["signed"], signed.output
    assert run_cli("score", image, "--index", built).exit_code == 0
    # a save with the key keeps the folder signed
    assert run_cli("calibrate", "--index", built, "--max-false-alarm", "0.1").exit_code == 0
    assert run_cli("score", image, "--index", built).exit_code == 0

    original = (built / "manifest.json").read_text()
    manifest = json.loads(original)
    manifest["threshold"]["value"] = 1e9  # nothing would ever be rejected
    (built / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("score", image, "--index", built)
    assert result.exit_code == EXIT_INDEX and "signature that is not this key's" in result.stderr
    (built / "manifest.json").write_text(original)
    assert run_cli("score", image, "--index", built).exit_code == 0
    key.write_text("another key, as long as the first one")  # the signed manifest, another key: refused too
    assert run_cli("score", image, "--index", built).exit_code == EXIT_INDEX

    monkeypatch.setenv(SIGNING_KEY_ENV, str(built / "key"))  # a key inside the folder it signs protects nothing
    (built / "key").write_text("0123456789abcdef0123456789abcdef")
    inside = run_cli("score", image, "--index", built)
    assert inside.exit_code == 2 and "inside the index folder" in inside.stderr
    monkeypatch.delenv(SIGNING_KEY_ENV)  # without a key nothing is checked
    assert run_cli("score", image, "--index", built).exit_code == 0
