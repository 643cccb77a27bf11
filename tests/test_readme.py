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
    for target in ("demo", "test", "bench", "sample", "dataset", "fidelity", "recipes"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in README, target
    assert "make test" in (REPO / ".ci" / "run").read_text()
