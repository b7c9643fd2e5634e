"""One error root: every class has an exit code, hints render per face, and the CLI exits as documented."""

import importlib
import inspect
import json
import pkgutil

import simsearch
from simsearch.cli.output import _message
from simsearch.errors import EXIT_CODES, CalibrationError, ConflictError, SimsearchError, WeightsError


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


def test_the_service_names_parameters_by_field_in_the_message_and_the_hint():
    from simsearch.errors import InputError
    from simsearch.service.app import error_response

    error = InputError("{param:max_false_alarm} and {param:target_recall} both given", hint="give one {param}",
                       parameter="policy")
    body = error_response(error).body.decode()
    assert '"detail":"max_false_alarm and target_recall both given"' in body and '"hint":"give one policy"' in body
    assert "{param" not in body
