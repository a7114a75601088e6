"""The structure the code promises: one registry, no import cycles, no arrow from pipeline/ into models/."""

import ast
import sys
from pathlib import Path

import click

import cli
from models import zoo

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "models")


def project_imports(path: Path) -> set[str]:
    """Modules of this project that a file imports (at the top or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES and module_file(name)}


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    files = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    return {module_name(path): project_imports(path) - {module_name(path)} for path in files}


def test_the_cli_offers_exactly_the_registry_and_every_name_builds_from_its_own_module():
    fit_choices = next(p for p in cli.cli.commands["fit"].params if p.name == "model_name").type
    assert isinstance(fit_choices, click.Choice) and list(fit_choices.choices) == list(zoo.MODELS)
    for name in zoo.MODELS:
        assert (ROOT / "models" / "zoo" / f"{name}.py").is_file()
        assert callable(zoo.spec(name).module().build)


def test_importing_the_registry_imports_no_tensorflow():
    import subprocess

    code = "import cli, models.zoo, sys; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_no_import_from_pipeline_into_models():
    graph = import_graph()
    arrows = [(module, target) for module, targets in graph.items() if module.startswith("pipeline")
              for target in targets if target.startswith("models")]
    assert arrows == []


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    # Package __init__ files are entered by any submodule's import; only module-to-module arrows count.
    edges = {module: {t for t in targets if module_file(t).name != "__init__.py"} for module, targets in graph.items()}
    visiting, done = set(), set()

    def visit(module, path):
        assert module not in visiting, " -> ".join(path + [module])
        if module in done:
            return
        visiting.add(module)
        for target in edges.get(module, ()):
            visit(target, path + [module])
        visiting.discard(module)
        done.add(module)

    for module in edges:
        visit(module, [])


def choices(command: str, option: str) -> tuple:
    return tuple(next(p for p in cli.cli.commands[command].params if p.name == option).type.choices)


def help_of(command: str, option: str) -> str:
    return next(p for p in cli.cli.commands[command].params if p.name == option).help


def named_values(help_text: str) -> dict[str, str]:
    """ "Default: the model's (64; ngram_bag and linear 256; pretrained 32)..." -> {"ngram_bag": "256", ...};
    the first value, without names, is the others': {"*": "64"}."""
    inside = help_text.split("the model's (", 1)[1].split(")", 1)[0]
    values = {}
    for part in inside.split("; "):
        *names, value = part.replace(" and ", ", ").rsplit(" ", 1) if " " in part else ("*", part)
        for name in (names[0].split(", ") if names else ["*"]):
            values[name] = value
    return values


def test_the_clis_choices_and_stated_defaults_are_the_specs():
    # `--help` is made from the specs; this reads each model's stated default back out of the text.
    from models import tuning, training
    from models.zoo.spec import OPTIMIZERS
    from pipeline import text

    assert choices("fit", "optimizer") == OPTIMIZERS
    assert choices("fit", "strategy") == training.STRATEGIES
    assert choices("fit", "truncate") == text.TRUNCATIONS and f"Default: {text.DEFAULT_TRUNCATE}" in help_of(
        "fit", "truncate")
    assert choices("tune", "tuner") == tuning.TUNERS
    for option, field, show in (("batch_size", "batch_size", str), ("optimizer", "optimizer", str),
                                ("learning_rate", "learning_rate", "{:g}".format),
                                ("warmup_share", "warmup_share", "{:g}".format)):
        stated = named_values(help_of("fit", option))
        for spec in zoo.SPECS:
            assert stated.get(spec.name, stated["*"]) == show(getattr(spec, field)), (option, spec.name)
    for spec in zoo.SPECS:
        assert f"{spec.lengths.coverage:.0%} of reviews whole, up to {spec.lengths.cap}" in help_of("fit", "max_len")
        assert spec.name in help_of("fit", "max_len") and spec.name in help_of("fit", "vocab_size")
