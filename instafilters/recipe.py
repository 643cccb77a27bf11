"""Recipes: YAML -> validated, frozen dataclasses, and their direct float evaluation.

Parameters are data (a table of op specs), not branches: adding an op means one entry in
`OP_SPECS` and one pure function in `ops/`. Each field's value is parsed by fields.py; the
file is read by files.py (regular, bounded, UTF-8, YAML without aliases). Every validation
failure raises a RecipeError naming the file, the filter, the op index and the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import yaml

from . import ops
from .errors import RecipeError
from .fields import (Invalid, aliases, boolean, calibration, choice, color, gradient, matrix3,
                     number, per_channel, points, show, slug, vec2, vec3)
from .files import load_yaml, read_text, why

SETS = ("paper", "extra")
MAX_RECIPE_BYTES = 1_000_000  # the bundled file, 42 filters, is 40 kB
# ops per filter: the bundled ones have at most 4 and fit writes at most 6; 30,000 ops
# (a 1 MB file) took 93 s and 15 GB to apply once
MAX_OPS = 32


REQUIRED = object()


@dataclass(frozen=True)
class OpSpec:
    """How to read one op: its kind decides how the compiler fuses it."""
    kind: str  # "tone" (per-channel 1-D), "matrix" (3x4 affine) or "spatial"
    fields: Mapping[str, tuple]  # name -> (parser, default or REQUIRED)
    apply: Callable | None = None  # tone: (x, params) -> x; matrix: params -> 3x4


def _curves(x, p):
    out = np.array(x, dtype=np.float32, copy=True)
    for c, key in enumerate("rgb"):
        if p.get(key):
            out[..., c] = ops.curve(out[..., c], p[key])
    return ops.curve(out, p["rgb"]) if p.get("rgb") else out


def _levels(x, p):
    return ops.levels(x, *(np.asarray(p[k]) for k in
                           ("in_black", "in_white", "gamma", "out_black", "out_white")))


def _solid_blend(x, p):
    return ops.composite(x, np.asarray(p["color"]), p["mode"], p["opacity"])


def _affine(make):
    """A CSS matrix op's params -> 3x4 with zero offset."""
    return lambda p: np.hstack([make(next(iter(p.values()))), np.zeros((3, 1))])


def _color_matrix(p):
    return np.hstack([np.asarray(p["matrix"]), np.asarray(p["offset"])[:, None] / 255.0])


_blend_mode = choice(*ops.BLEND_MODES)
_BLEND_FIELDS = {"color": (color, None), "gradient": (gradient, None),
                 "mode": (_blend_mode, "normal"), "opacity": (number(0, 1), 1.0)}
OP_SPECS: dict[str, OpSpec] = {
    # per-channel r/g/b curves, then the master rgb curve (0-255 knots)
    "curves": OpSpec("tone", {c: (points, None) for c in ("r", "g", "b", "rgb")}, _curves),
    # the levels dialog, scalars or [r, g, b]
    "levels": OpSpec("tone", {"in_black": (per_channel(0, 254), (0.0,) * 3),
                              "in_white": (per_channel(1, 255), (255.0,) * 3),
                              "gamma": (per_channel(0.1, 10), (1.0,) * 3),
                              "out_black": (per_channel(0, 255), (0.0,) * 3),
                              "out_white": (per_channel(0, 255), (255.0,) * 3)}, _levels),
    # >1 brightens midtones
    "gamma": OpSpec("tone", {"value": (number(0.1, 10), REQUIRED)},
                    lambda x, p: ops.gamma(x, p["value"])),
    # CSS brightness(), contrast(), saturate(), hue-rotate(), grayscale(), sepia()
    "brightness": OpSpec("tone", {"amount": (number(0, 4), REQUIRED)},
                         lambda x, p: ops.brightness(x, p["amount"])),
    "contrast": OpSpec("tone", {"amount": (number(0, 4), REQUIRED)},
                       lambda x, p: ops.contrast(x, p["amount"])),
    "saturation": OpSpec("matrix", {"amount": (number(0, 4), REQUIRED)},
                         _affine(ops.saturation_matrix)),
    "hue_rotate": OpSpec("matrix", {"degrees": (number(-360, 360), REQUIRED)},
                         _affine(ops.hue_rotate_matrix)),
    "grayscale": OpSpec("matrix", {"amount": (number(0, 1), 1.0)}, _affine(ops.grayscale_matrix)),
    "sepia": OpSpec("matrix", {"amount": (number(0, 1), 1.0)}, _affine(ops.sepia_matrix)),
    # rgb' = M rgb + offset (offset in 0-255)
    "color_matrix": OpSpec("matrix", {"matrix": (matrix3, REQUIRED),
                                      "offset": (vec3(-255, 255), (0.0, 0.0, 0.0))},
                           _color_matrix),
    # blend a solid colour or a linear/radial gradient under a W3C mode; tint is the same
    "blend": OpSpec("tone", _BLEND_FIELDS, _solid_blend),
    "tint": OpSpec("tone", _BLEND_FIELDS, _solid_blend),
    # towards the edges (or the centre with invert), blend a colour or apply curves
    "vignette": OpSpec("spatial", {
        "center": (vec2(-1, 2), (0.5, 0.5)), "radius": (number(0, 2), 0.5),
        "softness": (number(0.01, 4), 0.5), "strength": (number(0, 1), 1.0),
        "shape": (choice("ellipse", "circle"), "ellipse"), "invert": (boolean, False),
        "color": (color, (0.0, 0.0, 0.0)), "mode": (_blend_mode, "normal"),
        "curves": (None, None)}),
}


@dataclass(frozen=True)
class Op:
    """One validated op: its name, kind and parsed parameters."""
    name: str
    kind: str
    params: Mapping[str, Any]

    # -- point-wise pieces, used by both the reference evaluation and the compiler
    def tone(self, x):
        """Apply a per-channel op to float RGB (last axis 3)."""
        return OP_SPECS[self.name].apply(x, self.params)

    def clipped_tone(self, x):
        """`tone` as every evaluation runs it: input and output clipped to [0, 1]."""
        return np.clip(self.tone(np.clip(x, 0, 1)), 0, 1)

    def matrix(self):
        """The 3x4 affine map (offset in [0, 1] units) of a matrix op."""
        return OP_SPECS[self.name].apply(self.params)

    # -- spatial ops
    def effect(self, x):
        """What a vignette does at full weight (its colour blend or its curves)."""
        p = self.params
        if p["curves"]:
            return _curves(x, p["curves"])
        return ops.composite(x, np.asarray(p["color"]), p["mode"], 1.0)

    def mask(self, height, width):
        p = self.params
        return ops.vignette_mask(height, width, p["center"], p["radius"], p["softness"],
                                 p["strength"], p["shape"], p["invert"])

    def gradient_position(self, height, width):
        g = self.params["gradient"]
        if g["type"] == "linear":
            return ops.linear_position(height, width, g["angle"])
        return ops.radial_distance(height, width, g["center"], g["shape"]) / g["radius"]

    def spatial(self, x):
        """Direct float evaluation of a spatial op on an HxWx3 image."""
        h, w = x.shape[:2]
        if self.name == "vignette":
            m = self.mask(h, w)[..., None]
            return (1 - m) * x + m * self.effect(x)
        g = self.params["gradient"]
        positions = [s[0] for s in g["stops"]]
        weights = ops.gradient_weights(self.gradient_position(h, w), positions)
        source = sum(wk[..., None] * np.asarray(s[1], np.float32)
                     for wk, s in zip(weights, g["stops"]))
        return ops.composite(x, source, self.params["mode"], self.params["opacity"])


@dataclass(frozen=True)
class FilterRecipe:
    """A named filter: metadata plus its ordered ops."""
    name: str
    description: str
    ops: tuple[Op, ...]
    aliases: tuple[str, ...] = ()
    set: str = "extra"
    calibration: Mapping[str, Any] = field(default_factory=dict)

    def evaluate(self, x):
        """Reference float evaluation, op by op: the ground truth the compiler must match.

        Matrix ops compose linearly (no clipping between them); every other op reads and
        writes values clipped to [0, 1].
        """
        x = np.asarray(x, dtype=np.float32)
        for op in self.ops:
            if op.kind == "matrix":
                m = op.matrix()
                x = ops.apply_matrix(x, m[:, :3], m[:, 3])
            elif op.kind == "spatial":
                x = np.clip(op.spatial(np.clip(x, 0, 1)), 0, 1)
            else:
                x = op.clipped_tone(x)
        return np.clip(x, 0, 1).astype(np.float32)


# ---------------------------------------------------------------- loading
def parse_op(raw, *, file, filter_name, index) -> Op:
    where = dict(file=file, filter=filter_name, op=index)
    if not isinstance(raw, Mapping) or "op" not in raw:
        raise RecipeError(f"expected a mapping with an 'op' key, got {show(raw)}", **where)
    name = raw["op"]
    spec = OP_SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise RecipeError(f"unknown op {show(name)}; known ops: {', '.join(OP_SPECS)}", **where)
    where["op"] = f"{index} ({name})"
    unknown = [show(k, quote=False) for k in raw if k != "op" and k not in spec.fields]
    if unknown:
        raise RecipeError(f"unknown field; {name} takes {', '.join(spec.fields)}",
                          field=unknown[0], **where)
    params = {}
    for key, (parser, default) in spec.fields.items():
        if key not in raw:
            if default is REQUIRED:
                raise RecipeError("missing required field", field=key, **where)
            params[key] = default
            continue
        try:
            params[key] = _parse_nested(name, key, raw[key], file, filter_name, index) \
                if parser is None else parser(raw[key])
        except Invalid as e:
            raise RecipeError(str(e), field=key, **where) from None
    kind = spec.kind
    if name == "curves" and not any(params.values()):
        raise RecipeError("curves needs at least one of r, g, b, rgb", **where)
    if name in ("blend", "tint"):
        if (params["color"] is None) == (params["gradient"] is None):
            raise RecipeError("give exactly one of color or gradient", field="color", **where)
        if params["gradient"] is not None:
            kind = "spatial"
    if name == "vignette" and params["curves"] and "color" in raw:
        raise RecipeError("give either color/mode or curves, not both", field="curves", **where)
    return Op(name, kind, params)


def _parse_nested(op_name, key, value, file, filter_name, index):
    """The vignette's `curves` field is itself a curves op's fields."""
    assert op_name == "vignette" and key == "curves"
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping of r/g/b/rgb knots, got {show(value)}")
    nested = parse_op({"op": "curves", **value}, file=file, filter_name=filter_name, index=index)
    return nested.params


FILTER_KEYS = ("name", "aliases", "set", "description", "calibration", "ops")  # file order


def parse_filter(raw, *, file, index, default_set="extra") -> FilterRecipe:
    """One filter mapping -> FilterRecipe. `default_set=None` leaves `set` None where the
    file does not say it (the registry then keeps the set of the filter it replaces)."""
    if not isinstance(raw, Mapping):
        raise RecipeError(f"filter #{index}: expected a mapping, got {show(raw)}", file=file)
    try:
        name = slug(raw.get("name"))
    except Invalid as e:
        raise RecipeError(f"filter #{index}: name: {e}", file=file, field="name") from None
    where = dict(file=file, filter=name)
    unknown = sorted(map(str, set(raw) - set(FILTER_KEYS)))
    if unknown:
        raise RecipeError(f"unknown field; a filter takes {', '.join(sorted(FILTER_KEYS))}",
                          field=show(unknown[0], quote=False), **where)
    description = raw.get("description")
    if (not isinstance(description, str) or not description.strip()
            or any(ord(c) < 32 for c in description.strip())):
        raise RecipeError(f"expected a one-line description, got {show(description)}",
                          field="description", **where)
    set_ = raw.get("set", default_set)
    if set_ not in SETS and not (set_ is None and "set" not in raw):
        raise RecipeError(f"expected one of {', '.join(SETS)}, got {show(set_)}", field="set",
                          **where)
    raw_ops = raw.get("ops")
    if not isinstance(raw_ops, list):
        raise RecipeError("expected a list of ops", field="ops", **where)
    if len(raw_ops) > MAX_OPS:
        raise RecipeError(f"{len(raw_ops)} ops, over the limit of {MAX_OPS}", field="ops",
                          **where)
    fields = {}
    for key, parse, empty in (("aliases", aliases, []), ("calibration", calibration, {})):
        try:
            fields[key] = parse(empty if raw.get(key) is None else raw[key])
        except Invalid as e:
            raise RecipeError(str(e), field=key, **where) from None
    parsed_ops = tuple(parse_op(o, file=file, filter_name=name, index=i)
                       for i, o in enumerate(raw_ops))
    return FilterRecipe(name=name, description=description.strip(), ops=parsed_ops,
                        set=set_, **fields)


def load_recipe_file(path, default_set="extra") -> list[FilterRecipe]:
    """Read and validate a recipe file; duplicate names or aliases within it are errors."""
    path = Path(path)
    try:
        text = read_text(path, MAX_RECIPE_BYTES)
    except OSError as e:
        raise RecipeError(f"cannot read recipe file: {why(e)}", file=path) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"invalid YAML{line}: {getattr(e, 'problem', e)}", file=path) from None
    if isinstance(data, Mapping):
        data = data.get("filters")
    if not isinstance(data, list):
        raise RecipeError("expected a top-level 'filters:' list", file=path)
    recipes = [parse_filter(r, file=path, index=i, default_set=default_set)
               for i, r in enumerate(data)]
    check_unique(recipes, file=path)
    return recipes


def check_unique(recipes, file):
    seen: dict[str, str] = {}
    for r in recipes:
        for key in (r.name, *r.aliases):
            if key in seen:
                raise RecipeError(f"name or alias {key!r} already used by filter {seen[key]!r}",
                                  file=file, filter=r.name, field="aliases"
                                  if key != r.name else "name")
            seen[key] = r.name
