"""README stays true: its filter table, quick start and test command match the project."""
import re

import instafilters
from conftest import REPO

README = (REPO / "README.md").read_text()


def test_filter_table_lists_every_paper_filter_with_its_aliases():
    section = README.split("## The filters", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]*) \|", section, re.M)
    table = {name: re.findall(r"`([^`]+)`", aliases) for name, aliases in rows}
    registry = instafilters.load_filters()
    assert list(table) == registry.select("paper")
    for name, aliases in table.items():
        assert aliases == list(registry.recipes[name].aliases), name


def test_quick_start_commands_exist_in_the_makefile_and_ci_runs_the_test_command():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "test-all", "bench", "sample", "dataset", "fidelity",
                   "recipes", "docs"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in README, target
        assert f"make {target}" in makefile.split("\nhelp:", 1)[1].split("\n\n", 1)[0], target
    assert "\nmake test-all" in (REPO / ".ci" / "run").read_text()


def _table_options(heading):
    """The options named in the first column of the Options table under `heading`."""
    section = README.split(heading, 1)[1].split("### Options", 1)[1].split("\n\n", 2)[1]
    first = [row.split(" | ")[0] for row in section.splitlines() if row.startswith("| `")]
    return set(re.findall(r"(--[a-z][a-z-]*|-[a-z]\b)", " ".join(first)))


def _command_options(command):
    return {o for p in command.params if not getattr(p, "hidden", False) and p.name != "help"
            for o in p.opts + getattr(p, "secondary_opts", []) if o.startswith("-")}


def test_build_and_eval_option_tables_match_the_commands():
    from instafilters.dataset.command import build_command
    from instafilters.evaluate.command import eval_command  # click only: no torch import
    for heading, command in [("## Building ImageNet-Instagram", build_command),
                             ("## Evaluating a classifier", eval_command)]:
        table, options = _table_options(heading), _command_options(command)
        assert table == options, (f"{heading}: not in the README's table: {options - table}; "
                                  f"not an option: {table - options}")
