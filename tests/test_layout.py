"""The layout rules a newcomer relies on: one home per model, a contract that imports nothing of
ours, no function-local import of our own modules (the sign of a dodged cycle), a model card
beside every model."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from genrec_bench.models.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = {"genrec_bench": ROOT / "genrec_bench", "genrec_bench.baselines": ROOT / "baselines"}
MODEL_HOMES = ("genrec_bench.models.", "genrec_bench.baselines.")
CARD_HEADINGS = ("## Paper", "## What is faithful", "## Departures", "## Best row")


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name (baselines/ is genrec_bench.baselines)."""
    out = {}
    for prefix, folder in PACKAGE.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function?) for every run-time import of genrec_bench in `path`
    (imports under `if TYPE_CHECKING:` serve annotations only and are left out)."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            typing_only = in_type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("genrec_bench"):
                if not typing_only:
                    found.append((child.module, func))
            elif isinstance(child, ast.Import):
                found.extend((a.name, func) for a in child.names
                             if a.name.startswith("genrec_bench") and not typing_only)
            visit(child, func, typing_only)

    visit(tree, False, False)
    return found


def model_of(module: str) -> str | None:
    """The model folder a module belongs to ('genrec_bench.models.tiger'), or None."""
    for home in MODEL_HOMES:
        if module.startswith(home):
            rest = module[len(home):].split(".")[0]
            return home + rest if rest and rest != "registry" else None
    return None


def test_the_contract_imports_nothing_of_ours() -> None:
    assert imports(PACKAGE["genrec_bench"] / "api.py") == []


def test_no_model_imports_another_model_or_the_registry() -> None:
    bad = []
    for name, path in modules().items():
        own = model_of(name)
        for target, _ in imports(path):
            other = model_of(target)
            if own and (target.startswith("genrec_bench.models.registry") or (other and other != own)):
                bad.append(f"{name} imports {target}")
            if not own and other and not name.startswith(("genrec_bench.models.registry", "genrec_bench.backends")):
                bad.append(f"lower layer {name} imports model {target}")
    assert bad == []


def test_no_function_imports_our_own_modules() -> None:
    """A local import of genrec_bench inside a function is how a cycle gets dodged; none remain."""
    bad = [f"{name} imports {target} inside a function" for name, path in modules().items()
           for target, in_function in imports(path) if in_function]
    assert bad == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_built_in_model_has_its_own_folder_and_card(name: str) -> None:
    module = REGISTRY[name].partition(":")[0]
    assert module.startswith(MODEL_HOMES) and module.count(".") == 2, f"{name} lives at {module}"
    card = modules()[module + ".model"].parent / "README.md"
    text = card.read_text()
    assert text.startswith("# "), card
    missing = [h for h in CARD_HEADINGS if h not in text]
    assert missing == [], f"{card} lacks {missing}"


def test_the_old_contract_module_still_works_and_names_the_new_homes() -> None:
    import importlib
    import sys

    sys.modules.pop("genrec_bench.backends.base", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("genrec_bench.backends.base")
    from genrec_bench.api import Ranked

    assert old.Ranked is Ranked
    assert any(issubclass(w.category, DeprecationWarning) and "genrec_bench.api" in str(w.message) for w in caught)
