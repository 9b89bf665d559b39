"""Every figure the README's Results table gives in bold is on the page its row links to as
evidence (benchmarks/README.md, results/, docs/), to the digits the README quotes: a figure
changed in one place and not the other is caught without rerunning anything."""

from __future__ import annotations

import os
import re

import pytest

from conftest import REPO

NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _read(page: str) -> str:
  with open(os.path.join(REPO, page), encoding="utf-8") as f:
    return f.read()


def _result_rows() -> list[tuple[list[str], str]]:
  """(bold figures, evidence page) of each row of the README's Results table."""
  section = _read("README.md").split("## Results", 1)[1]
  table = re.search(r"^\|.*?(?=\n[^|])", section, re.S | re.M)
  assert table, "README.md's Results section has no table"
  rows = []
  for line in table.group().splitlines()[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    link = re.search(r"\]\(([^)#]+)", cells[-1])
    if link:
      rows.append((re.findall(r"\*\*(.+?)\*\*", cells[0]), link.group(1)))
  assert len(rows) >= 5, rows
  return rows


def _value(figure: str) -> tuple[float, int]:
  """The first number of a figure ('1,456 tokens/s', '+1.9%', '41.6k') and its decimals."""
  number = NUMBER.search(figure)
  assert number, figure
  digits = number.group().replace(",", "")
  return float(digits), len(digits.split(".")[1]) if "." in digits else 0


def missing_figures(figures: list[str], evidence: str) -> list[str]:
  """The figures no number of `evidence` rounds to (a 'k' figure: thousands)."""
  found = [float(n.replace(",", "")) for n in NUMBER.findall(evidence)]
  found += [1000 * float(n) for n in re.findall(r"(\d+(?:\.\d+)?)k\b", evidence)]
  missing = []
  for figure in figures:
    value, decimals = _value(figure)
    scale = 1000 if re.search(r"\d(\.\d+)?k\b", figure) else 1
    if not any(round(n / scale, decimals) == value for n in found):
      missing.append(figure)
  return missing


@pytest.mark.parametrize("figures, page", _result_rows())
def test_each_bold_result_is_on_its_evidence_page(figures, page):
  assert missing_figures(figures, _read(page)) == []


def test_a_figure_the_evidence_does_not_hold_is_caught():
  evidence = "eval loss 1.6988, 493k tokens/s, **42.6% MFU**, 1,456 tokens/s, +1.9%"
  assert missing_figures(["1.699", "42.6% MFU", "1,456 tokens/s", "+1.9%", "493k"], evidence) == []
  assert missing_figures(["1.70", "0.67", "494k"], evidence) == ["0.67", "494k"]
