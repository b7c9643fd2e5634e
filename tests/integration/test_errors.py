"""One error root: every class has an exit code, hints render per face, and the CLI exits as documented."""

import importlib
import inspect
import json
import pkgutil
import socket

import pytest
import torch
from typer.testing import CliRunner

import simsearch
from simsearch.cli.main import app
from simsearch.cli.output import _message
from simsearch.errors import EXIT_CODES, CalibrationError, ConflictError, SimsearchError, WeightsError

runner = CliRunner()
FAST = ["--no-pretrained", "--image-size", "64", "--device", "cpu"]


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _all_modules():
    for info in pkgutil.walk_packages(simsearch.__path__, "simsearch."):
        yield importlib.import_module(info.name)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_exception_class_is_a_simsearch_error_with_an_exit_code():
    own = {cls for module in _all_modules() for _, cls in inspect.getmembers(module, inspect.isclass)
           if issubclass(cls, BaseException) and cls.__module__.startswith("simsearch")}
    assert own, "no exception classes found"
    # Private classes (_Refused in the upload guard) are control flow that never leaves their module.
    public = [cls for cls in own if not cls.__name__.startswith("_")]
    assert [cls.__name__ for cls in public if not issubclass(cls, SimsearchError)] == []
    for cls in {SimsearchError, *_subclasses(SimsearchError)}:
        assert cls.exit_code in EXIT_CODES, cls
        assert cls.category, cls


def test_render_writes_the_flag_in_the_cli_and_the_field_in_the_service():
    from simsearch.service.app import error_response

    error = CalibrationError("the false-alarm rate must be in [0, 1)", hint="pass {param}, e.g. 0.01",
                             parameter="max_false_alarm")
    assert _message(error) == "the false-alarm rate must be in [0, 1); pass --max-false-alarm, e.g. 0.01"
    response = error_response(error)
    assert response.status_code == 422
    assert json.loads(response.body) == {"detail": "the false-alarm rate must be in [0, 1)",
                                         "hint": "pass max_false_alarm, e.g. 0.01",
                                         "parameter": "max_false_alarm", "category": "calibration"}
    assert error_response(ConflictError("busy")).status_code == 409
    assert error_response(WeightsError("gone")).status_code == 500


@pytest.fixture
def built(part_folder, tmp_path):
    index = tmp_path / "index"
    result = _run("build-index", part_folder / "good", "--out", index, "--mode", "image", *FAST)
    assert result.exit_code == 0, result.output
    return index


def test_remove_unknown_repeated_and_last_good(built):
    result = _run("remove", built, "999")
    assert result.exit_code == 2 and "no exemplar with id 999" in result.stderr
    result = _run("remove", built, "3", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"removed": [3]}
    result = _run("remove", built, *range(12))  # every good exemplar left, and 3 is gone already
    assert result.exit_code == 2 and "no exemplar with id 3" in result.stderr
    result = _run("remove", built, *[i for i in range(12) if i != 3])
    assert result.exit_code == ConflictError.exit_code and "last good exemplar" in result.stderr
    assert json.loads(_run("info", built, "--json").stdout)["counts"]["good"] == 11


def test_info_shows_the_last_save_and_no_coreset_in_image_mode(built):
    described = json.loads(_run("info", built, "--json").stdout)
    manifest = json.loads((built / "manifest.json").read_text())
    assert described["updated"] == manifest["updated"] and described["coreset_ratio"] is None
    text = _run("info", built).stdout
    assert manifest["updated"] in text
    assert "coreset" not in text and "patches in the bank" not in text


def test_unknown_embedder_missing_weights_and_absent_gpu(part_folder, tmp_path):
    good, out = part_folder / "good", tmp_path / "idx"
    result = _run("build-index", good, "--out", out, "--embedder", "nosuch:x", "--device", "cpu")
    assert result.exit_code == 2 and "unknown embedder" in result.stderr
    result = _run("build-index", good, "--out", out, "--backbone", "nosuch", *FAST)
    assert result.exit_code == 2 and "--backbone" in result.stderr
    result = _run("build-index", good, "--out", out, "--weights", tmp_path / "none.pth", "--device", "cpu")
    assert result.exit_code == WeightsError.exit_code and "--weights" in result.stderr
    if not torch.cuda.is_available():
        result = _run("build-index", good, "--out", out, "--no-pretrained", "--device", "cuda")
        assert result.exit_code == 2 and "--device" in result.stderr
    assert "please report" not in result.stderr


def test_port_in_use_exits_2_naming_the_port(built):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        result = _run("serve", "--index", built, "--port", port, "--device", "cpu")
    finally:
        taken.close()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "please report" not in lines[0]


def test_build_index_modes_come_from_the_registry(part_folder, tmp_path):
    result = _run("build-index", part_folder / "good", "--out", tmp_path / "bad", "--mode", "nearest", *FAST)
    assert result.exit_code == 2 and "contrast, image, open-set, patch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = _run("build-index", part_folder / "good", "--out", tmp_path / "contrast", "--mode", "contrast", *FAST)
    assert result.exit_code == 0, result.output
    assert "patches in the" in result.output and "mode contrast" in result.output


def test_the_service_names_parameters_by_field_in_the_message_and_the_hint():
    from simsearch.errors import InputError
    from simsearch.service.app import error_response

    error = InputError("{param:max_false_alarm} and {param:target_recall} both given", hint="give one {param}",
                       parameter="policy")
    body = error_response(error).body.decode()
    assert '"detail":"max_false_alarm and target_recall both given"' in body and '"hint":"give one policy"' in body
    assert "{param" not in body
