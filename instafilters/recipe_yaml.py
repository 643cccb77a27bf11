"""Recipe mappings -> YAML, the inverse of recipe.py's loading: the layout of filters.yaml
(block-style filters, flow-style ops and knot lists), written by `make recipes` and
`instafilters fit`."""
from __future__ import annotations

import json

from .recipe import FILTER_KEYS

META_KEYS = FILTER_KEYS[1:-1]  # after name, before ops


def _flow(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else "0"
    if isinstance(value, str):
        plain = value and not value[0].isdigit() and all(ch.isalnum() or ch in "-_." for ch in value)
        return value if plain else json.dumps(value)
    return str(value)


def to_yaml(recipes, header="") -> str:
    """Recipe mappings -> readable YAML (block filters, flow-style knot lists)."""
    lines = [header.rstrip("\n")] if header else []
    lines += ["version: 1", "filters:"]
    for r in recipes:
        lines.append(f"- name: {_flow(r['name'])}")
        for key in META_KEYS:
            if key in r:
                lines.append(f"  {key}: {_flow(r[key])}")
        lines.append("  ops:")
        for op in r["ops"]:
            items = list(op.items())
            lines.append(f"  - {items[0][0]}: {_flow(items[0][1])}")
            for k, v in items[1:]:
                lines.append(f"    {k}: {_flow(v)}")
    return "\n".join(lines) + "\n"
