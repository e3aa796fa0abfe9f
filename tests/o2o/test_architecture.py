"""The apps' dependency direction (ARCHITECTURE.md): an app imports only the apps to its left;
`integrations` sits at the edge and no app imports it, except its `vendors` package, which imports
no app; the project package `o2o` imports no app."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["stores", "inventory", "members", "orders", "commissions", "integrations"]


def _imported_apps(path: Path) -> set[str]:
    """Top-level project packages a module imports, with `integrations.vendors` kept apart."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "integrations.vendors" or name.startswith("integrations.vendors."):
                found.add("integrations.vendors")
            elif name.split(".")[0] in ORDER:
                found.add(name.split(".")[0])
    return found


def _modules(package: str):
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("app", ORDER)
def test_an_app_imports_only_the_apps_to_its_left(app):
    allowed = set(ORDER[: ORDER.index(app) + 1]) | {"integrations.vendors"}
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported - allowed)
        for path in _modules(app)
        for imported in [_imported_apps(path)]
        if imported - allowed
    }
    assert wrong == {}


def test_vendors_and_the_project_package_import_no_app():
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_apps(path) - {"integrations.vendors"})
        for path in [*_modules("integrations/vendors"), *_modules("o2o")]
        if _imported_apps(path) - {"integrations.vendors"}
    }
    assert wrong == {}


def test_the_check_sees_an_import_to_the_right(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from commissions.selectors import balances\nimport integrations.vendors.wechat\n")
    assert _imported_apps(module) == {"commissions", "integrations.vendors"}
