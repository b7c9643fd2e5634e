"""The `simsearch` command run in-process for tests (typer's CliRunner), and its fast, weight-free options."""

from typer.testing import CliRunner

from simsearch.cli.main import app

FAST = ["--no-pretrained", "--image-size", "64", "--device", "cpu"]  # random weights, 64 px inputs, the CPU
_runner = CliRunner()


def run_cli(*args, **invoke):
    """`simsearch ARGS`, each argument as text; `invoke`: CliRunner.invoke's options (input, env)."""
    return _runner.invoke(app, [str(a) for a in args], **invoke)
