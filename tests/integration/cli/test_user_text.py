"""User text in CLI output: Rich markup in defect types and paths prints as typed, never as styles or links,
and defect types over the length limit or with control characters are refused in one line."""

import shutil

from simsearch.cli.output import EXIT_BAD_INPUT
from tests.cli_runner import run_cli
from tests.integration.cli.test_cli import built  # noqa: F401  (fixture)


def test_markup_in_types_and_paths_prints_as_typed(built, part_folder, tmp_path):  # noqa: F811
    odd = tmp_path / "a[" / "[b]c[i].png"  # the path reads a[/[b]c[i].png (markup); the table keeps the name
    odd.parent.mkdir()
    shutil.copy(next((part_folder / "defect").rglob("*.png")), odd)
    for kind in ("[/]", "[link=https://evil.example]click[/link]"):
        # the same file twice on purpose: each add must record its type, so duplicates are allowed here
        added = run_cli("add", built, odd, "--label", "defect", "--type", kind, "--allow-duplicates")
        assert added.exit_code == 0, added.output
    info = run_cli("info", built)
    assert info.exit_code == 0, info.output
    assert "[/]: 1" in info.stdout and "[link=https://evil.example]click[/link]: 1" in info.stdout
    assert "\x1b]8;" not in info.stdout  # no terminal hyperlink escape
    scored = run_cli("score", odd, "--index", built)
    assert scored.exit_code == 0, scored.output
    assert "[b]c[i].png" in scored.stdout, scored.stdout


def test_defect_type_limits_in_the_cli(built, part_folder):  # noqa: F811
    image = next((part_folder / "good").glob("*.png"))
    for bad in ("x" * 65, "nul\x01byte"):
        result = run_cli("add", built, image, "--label", "defect", "--type", bad)
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        assert result.stderr.count("\n") == 1 and "--type" in result.stderr and "Traceback" not in result.output
