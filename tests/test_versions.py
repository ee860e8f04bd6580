"""`aam versions` (results/versions.tsv) and its section of the results page: the versions it lists
are the ones Python's own metadata and PyTorch report."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import pandas as pd
import torch

import aam
from aam.cli import main
from aam.evaluate.results_page import build


def test_versions_table_names_what_is_installed(tmp_path):
    out = tmp_path / "versions.tsv"
    assert main(["versions", "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["kind", "name", "version"]
    rows = {(k, n): v for k, n, v in table.itertuples(index=False)}
    assert rows[("python", "python")].endswith(platform.python_version())
    assert rows[("aam", "aam")] == aam.__version__
    for name in ("numpy", "torch", "snakemake", "scikit-bio", "biom-format"):
        assert rows[("dependency", name)] == importlib.metadata.version(name)
    assert rows[("torch", "torch")] == torch.__version__
    assert rows[("torch", "cuda")] == (torch.version.cuda or "none")
    assert rows[("torch", "cuda_available")] == str(torch.cuda.is_available())
    installed = table[table["kind"] == "installed"]
    assert "pytest" in set(installed["name"]) and not ({"numpy", "aam"} & set(installed["name"]))


def test_results_page_shows_the_versions(tmp_path):
    versions = tmp_path / "versions.tsv"
    pd.DataFrame({"kind": ["python", "dependency", "installed"], "name": ["python", "numpy", "zipp"],
                  "version": ["CPython 3.11.7", "2.0.1", "3.20"]}).to_csv(versions, sep="\t", index=False)
    page = build(tmp_path, json.loads('{"datasets": {}, "sequences": {}}'), versions)
    assert "<h3>Software versions</h3>" in page
    shown = page[page.index('id="versions"'):]
    shown = shown[: shown.index("</table>")]
    assert "CPython 3.11.7" in shown and "2.0.1" in shown and "zipp" not in shown
    assert "The other 1 installed packages" in page and "zipp" in page
