"""The options as a JSON Schema, for YAML config files: editors validate and complete them with it.

Built from Config's fields (type, default, help, choices), so it cannot drift from them;
docs/config.schema.json is its committed copy and a test holds the two equal.
"""

from __future__ import annotations

import math
from typing import Any

from spark_img2ds.config import Config, option_fields

SCHEMA_ID = "https://spark-img2ds.invalid/config.schema.json"
_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "str | None": {"type": ["string", "null"]},
    "list[str] | None": {"type": ["array", "string", "null"], "items": {"type": "string"}},  # "a,b" on the CLI
    "dict[str, Any]": {"type": ["object", "string"]},
    "int | str": {"type": ["integer", "string"]},
    "bool | str": {"type": ["boolean", "string"]},
    "Any": {"type": "string"},
}


def config_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) of a YAML config file: a mapping of option names to values."""
    defaults = Config(url_list="-")
    properties = {}
    for f in option_fields():
        entry = dict(_TYPES[str(f.type)])
        entry["description"] = f.metadata["help"]
        default = getattr(defaults, f.name)
        if f.name != "url_list" and not (isinstance(default, float) and math.isinf(default)):  # JSON has no inf
            entry["default"] = default
        choices = f.metadata.get("choices")
        if choices is not None:
            entry["enum"] = list(choices)
        if f.name == "pin_cpus":
            entry["enum"] = [True, False, "auto"]
        properties[f.name] = entry
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "spark_img2ds options",
        "description": "A YAML file of options for spark-img2ds --config; the names are download()'s keywords.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
