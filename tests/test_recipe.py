"""Loading validates everything and names file, filter, op index and field."""
import textwrap

import pytest

import instafilters
from conftest import cli, one_line_error
from instafilters.errors import RecipeError
from instafilters.recipe import load_recipe_file


def write(tmp_path, body, name="my.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def write_ops(tmp_path, *ops):
    """A recipe file with one filter 'ok' made of these ops (YAML flow mappings)."""
    lines = "".join(f"      - {op}\n" for op in ops)
    return write(tmp_path, "\n    filters:\n    - name: ok\n      description: fine\n"
                           "      ops:\n" + lines)


# written out, not read from the code under test
PAPER = ["1977", "amaro", "brannan", "earlybird", "gotham", "hefe", "hudson", "inkwell",
         "kelvin", "lofi", "mayfair", "nashville", "rise", "sierra", "sutro", "toaster",
         "valencia", "walden", "willow", "xpro2"]

GOOD = """
filters:
- name: warmish
  aliases: [warm-ish]
  description: A test filter.
  ops:
  - {op: curves, r: [[0, 10], [255, 250]]}
  - {op: saturation, amount: 1.2}
  - {op: vignette, radius: 0.5, softness: 0.4, strength: 0.3}
"""


def test_good_file_loads(tmp_path):
    (recipe,) = load_recipe_file(write(tmp_path, GOOD))
    assert recipe.name == "warmish" and recipe.aliases == ("warm-ish",)
    assert [op.name for op in recipe.ops] == ["curves", "saturation", "vignette"]
    assert [op.kind for op in recipe.ops] == ["tone", "matrix", "spatial"]
    assert recipe.ops[2].params["softness"] == 0.4 and recipe.ops[2].params["invert"] is False


@pytest.mark.parametrize("op_text,field,fragment", [
    ("{op: sharpen, amount: 1}", None, "unknown op 'sharpen'"),
    ("{op: saturation}", "amount", "missing required field"),
    ("{op: saturation, amount: 9}", "amount", "expected a number in [0, 4]"),
    ("{op: saturation, amount: high}", "amount", "expected a number"),
    ("{op: contrast, amount: 1, gain: 2}", "gain", "unknown field"),
    ("{op: curves, r: [[0, 0], [0, 5]]}", "r", "strictly increasing"),
    ("{op: curves, g: [[0, 0], [300, 5]]}", "g", "[0, 255]"),
    ("{op: curves, b: " + str([[i, i] for i in range(17)]) + "}", "b", "2 to 16"),
    ("{op: blend, color: '#zzzzzz'}", "color", "#rrggbb"),
    ("{op: blend, color: [1, 2, 3], mode: glow}", "mode", "expected one of"),
    ("{op: blend, mode: screen}", "color", "exactly one of color or gradient"),
    ("{op: blend, gradient: {type: radial, stops: [[0, '#000000']]}}", "gradient", "2 to 16"),
    ("{op: vignette, strength: 1.5}", "strength", "[0, 1]"),
    ("{op: vignette, invert: 1}", "invert", "true or false"),
    ("{op: color_matrix, matrix: [[1, 0], [0, 1]]}", "matrix", "3x3"),
])
def test_bad_ops_name_file_filter_op_and_field(tmp_path, op_text, field, fragment):
    path = write_ops(tmp_path, "{op: brightness, amount: 1.1}", op_text)
    with pytest.raises(RecipeError) as err:
        load_recipe_file(path)
    message = str(err.value)
    assert str(path) in message and "filter 'ok'" in message and "op 1" in message
    assert fragment in message
    if field:
        assert f"field {field!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize("body,fragment", [
    ("filters: [{name: Bad Name, description: x, ops: []}]", "lowercase slug"),
    ("filters: [{name: a, ops: []}]", "description"),
    ("filters: [{name: a, description: x, ops: [], colour: 1}]", "unknown field"),
    ("filters: [{name: a, description: x, ops: []}, {name: a, description: y, ops: []}]",
     "already used"),
    ("filters: [{name: a, description: x, ops: []}, {name: b, aliases: [a], description: y, "
     "ops: []}]", "already used"),
    ("filters: [{name: a, description: x, set: fancy, ops: []}]", "paper, extra"),
    ("filters: {oops", "invalid YAML"),
    ("just a string", "top-level 'filters:'"),
])
def test_bad_filters(tmp_path, body, fragment):
    path = write(tmp_path, body)
    with pytest.raises(RecipeError, match="my.yaml") as err:
        load_recipe_file(path)
    assert fragment in str(err.value)


def test_missing_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="cannot read recipe file"):
        load_recipe_file(tmp_path / "nope.yaml")


MY_TOASTER = """
    filters:
    - name: toaster
      description: my own toaster
      ops: [{op: brightness, amount: 0.5}]
    """


def test_user_recipes_merge_over_bundled(tmp_path):
    path = write(tmp_path, MY_TOASTER + """
    - name: newone
      description: new
      ops: [{op: contrast, amount: 1.2}]
    """)
    merged = instafilters.load_filters(path)
    assert merged.recipes["toaster"].description == "my own toaster"
    assert "newone" in merged and len(merged) == len(instafilters.load_filters()) + 1
    # the override keeps toaster's place and set; the new filter is extra
    assert merged.select("paper") == PAPER
    assert merged.recipes["toaster"].set == "paper" and merged.recipes["newone"].set == "extra"
    alone = instafilters.load_filters(path, merge=False)
    assert list(alone) == ["toaster", "newone"]
    assert alone.names("paper") == []  # alone, nothing is replaced: no set said means extra


def test_an_override_may_move_a_filter_out_of_paper(tmp_path):
    path = write(tmp_path, """
    filters:
    - name: toaster
      set: extra
      description: my own toaster, not one of the paper's
      ops: [{op: brightness, amount: 0.5}]
    """)
    merged = instafilters.load_filters(path)
    assert merged.select("paper") == [n for n in PAPER if n != "toaster"]
    assert merged.recipes["toaster"].set == "extra"


def test_list_with_a_paper_override_still_lists_twenty(tmp_path):
    path = write(tmp_path, MY_TOASTER)
    result = cli("list", "--recipes", path)
    assert result.returncode == 0, result.stderr
    rows = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert rows == PAPER
    assert "my own toaster" in result.stdout


def test_user_alias_may_not_shadow_a_bundled_filter(tmp_path):
    path = write(tmp_path, """
    filters:
    - name: mine
      aliases: [lordkelvin]
      description: clash
      ops: []
    """)
    with pytest.raises(RecipeError, match="'lordkelvin' is already used"):
        instafilters.load_filters(path)


def test_cli_reports_recipe_error_in_one_line(tmp_path):
    path = write(tmp_path, "filters: [{name: a, description: x, ops: [{op: blur}]}]")
    one_line_error(cli("list", "--recipes", path), "unknown op 'blur'")


# ---------------------------------------------------------------- hostile recipes (issue 7)
@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("op_text,field", [
    ("{op: saturation, amount: BAD}", "amount"),
    ("{op: curves, r: [[0, BAD], [255, 255]]}", "r"),
    ("{op: curves, rgb: [[BAD, 0], [255, 255]]}", "rgb"),
    ("{op: vignette, radius: BAD}", "radius"),
    ("{op: gamma, value: BAD}", "value"),
    ("{op: color_matrix, matrix: [[1, 0, 0], [0, BAD, 0], [0, 0, 1]]}", "matrix"),
    ("{op: color_matrix, matrix: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], offset: [0, BAD, 0]}",
     "offset"),
    ("{op: blend, gradient: {stops: [[0, '#000000'], [BAD, '#ffffff']]}}", "gradient"),
    ("{op: blend, gradient: {stops: [[0, '#000000'], [1, '#ffffff']], radius: BAD}}",
     "gradient"),
    ("{op: blend, color: [BAD, 0, 0]}", "color"),
    ("{op: levels, gamma: [1, BAD, 1]}", "gamma"),
    ("{op: levels, in_black: BAD}", "in_black"),
    ("{op: blend, color: '#102030', opacity: BAD}", "opacity"),
])
def test_non_finite_numbers_are_refused_in_every_field(tmp_path, op_text, field, bad):
    path = write_ops(tmp_path, op_text.replace("BAD", bad))
    with pytest.raises(RecipeError, match="expected a number in") as err:
        load_recipe_file(path)
    assert f"field {field!r}" in str(err.value) and "op 0" in str(err.value)


def test_nan_saturation_is_refused_by_the_cli(tmp_path, sample_photo):
    path = write(tmp_path, """
    filters:
    - name: blackout
      description: NaN would make every pixel black
      ops: [{op: saturation, amount: .nan}]
    """)
    out = tmp_path / "out.png"
    result = cli("apply", "-f", "blackout", "--recipes", path, sample_photo, out)
    one_line_error(result, str(path), "filter 'blackout'", "field 'amount'", "nan")
    assert not out.exists()


@pytest.mark.parametrize("body,field,fragment", [
    ('filters: [{name: "evil\\n", description: x, ops: []}]', "name", "lowercase slug"),
    ('filters: [{name: "../up", description: x, ops: []}]', "name", "lowercase slug"),
    ('filters: [{name: "' + "a" * 65 + '", description: x, ops: []}]', "name", "at most 64"),
    ('filters: [{name: 5, description: x, ops: []}]', "name", "lowercase slug"),
    ('filters: [{name: a, aliases: ["x\\ty"], description: x, ops: []}]', "aliases",
     "lowercase slug"),
    ('filters: [{name: a, aliases: [Upper], description: x, ops: []}]', "aliases",
     "lowercase slug"),
    ('filters: [{name: a, aliases: b, description: x, ops: []}]', "aliases", "list of names"),
    ('filters: [{name: a, description: "two\\nlines", ops: []}]', "description", "one-line"),
    ("filters: [{name: a, description: x, ops: [{op: [saturation]}]}]", None, "unknown op"),
    ("filters: [{name: a, description: x, ops: [], 1: x, b: y}]", "1", "unknown field"),
    ("filters: [{name: a, description: x, ops: [], calibration: [1]}]", "calibration",
     "expected a mapping"),
    ("filters: [{name: a, description: x, ops: [], calibration: {de_mean: high}}]",
     "calibration", "expected a number"),
    ("filters: [{name: a, description: x, ops: [], calibration: {de_mean: .nan}}]",
     "calibration", "expected a number in"),
    ("filters: [{name: a, description: x, ops: [], calibration: {reference: ../../x.jpg}}]",
     "calibration", "plain file name"),
    ("filters: [{name: a, description: x, ops: [], calibration: {frame: [0, 10]}}]",
     "calibration", "[height, width]"),
    ("filters: [{name: a, description: x, ops: [], calibration: {colour: 1}}]",
     "calibration", "unknown calibration field"),
])
def test_names_aliases_and_metadata_are_checked(tmp_path, body, field, fragment):
    path = write(tmp_path, body)
    with pytest.raises(RecipeError, match="my.yaml") as err:
        load_recipe_file(path)
    message = str(err.value)
    assert fragment in message and "\n" not in message.replace("\\n", "")
    if field:
        assert f"field {field!r}" in message


def test_evil_name_never_reaches_the_file_system(tmp_path, sample_photo):
    path = write(tmp_path, 'filters: [{name: "evil\\n", description: x, ops: []}]')
    result = cli("list", "--recipes", path)
    one_line_error(result, "lowercase slug")


def billion_laughs(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nfilters: *l{levels - 1}\n"


@pytest.mark.parametrize("body,fragment", [
    (billion_laughs(10), "anchors and aliases"),
    ("a: &x {name: a}\nfilters: []\n", "anchors and aliases"),
    ("filters: " + "[" * 100_000, "nest"),
    ("filters: " + "[" * 40 + "]" * 40, "nested deeper than 32"),
    ("filters: []\n" + "#" * 1_000_001, "over the limit of 1000000"),
])
def test_yaml_bombs_are_refused_quickly(tmp_path, body, fragment):
    path = tmp_path / "my.yaml"
    path.write_text(body)
    with pytest.raises(RecipeError, match="my.yaml") as err:
        load_recipe_file(path)
    message = str(err.value)
    assert fragment in message and len(message) < 300, message


def test_non_utf8_recipe_names_the_byte(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_bytes("filters: [{name: caf\xe9, description: x, ops: []}]\n".encode("latin-1"))
    with pytest.raises(RecipeError, match=r"my.yaml: cannot read recipe file: not UTF-8 text "
                                          r"\(byte 0xe9 at offset 20\)"):
        load_recipe_file(path)


def test_huge_values_make_short_error_lines(tmp_path):
    path = write(tmp_path, "filters: [{name: a, description: x, ops: [{op: saturation, "
                 "amount: '" + "x" * 100_000 + "'}]}]")
    with pytest.raises(RecipeError) as err:
        load_recipe_file(path)
    assert len(str(err.value)) < 300
