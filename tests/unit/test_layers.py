"""The house rules, drawn from the code (ast, nothing imported): imports point one way along the pipeline,
inference never imports training, no cycle between packages, and `import simsearch` stays light."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "simsearch"

BASE = ["errors", "runtime", "files"]  # shared by every layer, import nothing of simsearch but errors
PIPELINE = ["data", "embed", "index", "score", "evaluate", "decide", "inspector"]  # each imports only earlier ones


def allowed_imports() -> dict[str, set[str]]:
    """For each top-level unit, the units it may import."""
    allowed = {"errors": set(), "runtime": {"errors"}, "files": {"errors"}}
    for position, stage in enumerate(PIPELINE):
        allowed[stage] = set(BASE) | set(PIPELINE[:position])
    everything_inference = set(BASE) | set(PIPELINE)
    allowed["train"] = set(BASE) | {"data", "embed"}  # training writes checkpoints that embed/ reads
    allowed["baselines"] = everything_inference | {"train"}
    allowed["report"] = everything_inference
    allowed["loading"] = everything_inference | {"baselines"}
    allowed["engines"] = everything_inference  # the pipeline beyond one process (Ray): a face, never training
    allowed["service"] = everything_inference | {"report", "baselines", "loading"}
    allowed["cli"] = everything_inference | {"train", "baselines", "report", "service", "loading", "engines"}
    return allowed


def unit_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return None  # the root facade re-exports lazily
    return parts[0]


def imported_units(path: Path) -> set[str]:
    """Top-level simsearch units a module imports (deferred imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "simsearch" and len(parts) > 1:
                found.add(parts[1])
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = unit_of(path)
        if unit is not None:
            graph.setdefault(unit, set()).update(imported_units(path) - {unit})
    return graph


def test_every_unit_has_a_place_in_the_layers():
    assert set(import_graph()) <= set(allowed_imports()), "a new top-level unit needs a row in allowed_imports()"


def test_no_import_against_the_layer_order():
    allowed = allowed_imports()
    wrong = sorted(f"{unit} imports {target}" for unit, targets in import_graph().items()
                   for target in targets if target not in allowed[unit])
    assert wrong == []


def test_inference_never_imports_training():
    graph = import_graph()
    assert [unit for unit in PIPELINE if "train" in graph.get(unit, set())] == []


def test_no_cycle_between_units():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(unit: str, trail: list[str]) -> None:
        state[unit] = 1
        for target in graph.get(unit, ()):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [unit, target])
            elif target not in state:
                visit(target, trail + [target])
        state[unit] = 2

    for unit in graph:
        if unit not in state:
            visit(unit, [unit])
    assert cycles == []


def test_the_guard_sees_a_forbidden_import(tmp_path, monkeypatch):
    # the checker itself: an embed module importing inspector is found
    fake = tmp_path / "simsearch"
    (fake / "embed").mkdir(parents=True)
    (fake / "embed" / "x.py").write_text("def f():\n    from simsearch.inspector import Inspector\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert import_graph() == {"embed": {"inspector"}}


def test_import_simsearch_is_light():
    code = ("import sys, simsearch; from simsearch.errors import SimsearchError; "
            "import simsearch.decide.threshold; "
            "heavy = [m for m in ('torch', 'faiss', 'torchvision', 'scipy', 'sklearn') if m in sys.modules]; "
            "print(heavy); assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_public_names_are_the_lazy_ones():
    import simsearch

    assert sorted(simsearch.__all__) == sorted([*simsearch._LAZY, "__version__"])
    assert {name: getattr(simsearch, name).__module__ for name in simsearch._LAZY} == simsearch._LAZY


def test_cli_help_is_light():
    code = ("import sys; from typer.testing import CliRunner; from simsearch.cli.main import app; "
            "result = CliRunner().invoke(app, ['--help']); assert result.exit_code == 0, result.output; "
            "heavy = [m for m in ('torch', 'faiss') if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
