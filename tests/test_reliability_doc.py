"""docs/reliability.md counts what the tests hold: each row's test exists and has as many cases as
the row says (parametrized cases counted from the test's source), and the section, total and README
figures are the sums of the rows."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"
ROW = re.compile(r"^\| (?P<case>[^|]+) \| (?P<n>\d+) \| (?P<outcome>one line|correct result) \| "
                 r"`(?P<file>test_\w+\.py)::(?P<test>test_\w+)` \|$")
SECTION = re.compile(r"^### .*: (\d+) cases, (\d+) one clear line, (\d+) correct result$")
TOTAL = re.compile(r"\*\*(\d+) cases tried: (\d+) give one clear line, (\d+) run and give the correct result")


def case_count(file: str, test: str) -> int:
    """The cases pytest collects for `test`: the product of its parametrize lists' lengths."""
    tree = ast.parse((REPO / "tests" / file).read_text())
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == test),
                    None)
    assert function is not None, f"{file}::{test} is not a test"
    sizes = [len(mark.args[1].elts) for mark in function.decorator_list
             if isinstance(mark, ast.Call) and ast.unparse(mark.func) == "pytest.mark.parametrize"]
    return math.prod(sizes)


def test_every_row_counts_its_tests_cases_and_the_sums_add_up():
    sections, rows = [], []
    for line in DOC.read_text().splitlines():
        if match := SECTION.match(line):
            sections.append([tuple(map(int, match.groups())), []])
        elif match := ROW.match(line):
            assert sections, line
            sections[-1][1].append(match)
            rows.append(match)
    assert len(sections) >= 5 and len(rows) > 100
    for (total, one_line, correct), section_rows in sections:
        for row in section_rows:
            assert int(row["n"]) == case_count(row["file"], row["test"]), row["test"]
        assert one_line == sum(int(r["n"]) for r in section_rows if r["outcome"] == "one line")
        assert correct == sum(int(r["n"]) for r in section_rows if r["outcome"] == "correct result")
        assert total == one_line + correct
    assert len({(r["file"], r["test"]) for r in rows}) == len(rows), "a test counted twice"
    figures = tuple(sum(s[0][k] for s in sections) for k in range(3))
    assert tuple(map(int, TOTAL.search(DOC.read_text()).groups())) == figures
    readme = (REPO / "README.md").read_text()
    assert f"({figures[0]} cases: {figures[1]} one clear line, {figures[2]} correct result)" in readme
