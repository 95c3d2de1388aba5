"""Write docs/inventory.schema.json and docs/report.schema.json from the models that validate them.

Run `python docs/schemas.py` after changing either model; tests/test_docs.py fails until then.
"""

from __future__ import annotations

import json
from pathlib import Path

from sweeper.inventory import InventoryModel
from sweeper.report.schema import Report

DOCS = Path(__file__).parent
SCHEMAS = {
    "inventory.schema.json": lambda: InventoryModel.model_json_schema(),
    "report.schema.json": lambda: Report.model_json_schema(by_alias=True),
}


def rendered(name: str) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name in SCHEMAS:
        (DOCS / name).write_text(rendered(name))
        print(DOCS / name)
