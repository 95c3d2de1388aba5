"""The contracts a user reads (docs/, README) say what the code does: generated schemas are current,
every inventory key, exit code and rule id is documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from sweeper import errors
from sweeper.detect import select
from sweeper.inventory import NodeModel

ROOT = Path(__file__).parent.parent


def schemas_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("schemas", ROOT / "docs" / "schemas.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("name", ["inventory.schema.json", "report.schema.json"])
def test_the_schemas_in_docs_are_the_models_own(name: str) -> None:
    assert (ROOT / "docs" / name).read_text() == schemas_module().rendered(name), "run python docs/schemas.py"


def test_every_inventory_key_is_documented() -> None:
    text = (ROOT / "docs" / "inventory.md").read_text()
    missing = [key for key in NodeModel.model_fields if f"`{key}`" not in text]
    assert not missing


def test_every_exit_code_is_documented() -> None:
    text = (ROOT / "docs" / "exit-codes.md").read_text()
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert codes and all(re.search(rf"^\| {code} \|", text, re.M) for code in codes)


def test_every_rule_is_in_the_readme_table() -> None:
    text = (ROOT / "README.md").read_text()
    missing = [rule.id for rule in select(None) if f"`{rule.id}`" not in text]
    assert not missing


def test_every_vcenter_check_rule_is_in_the_readme_table() -> None:
    from sweeper.health import RULES

    text = (ROOT / "README.md").read_text()
    assert RULES and not [rule for rule in RULES if f"| `{rule}` |" not in text]
