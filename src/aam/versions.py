"""The software a run used, as one table (results/versions.tsv, rule `versions`).

Rows of ``kind``, ``name``, ``version``:

- ``system``: the operating system and machine;
- ``python``: the interpreter;
- ``aam``: this package (and the git commit it runs from, ``-modified`` when the checkout has
  uncommitted changes);
- ``dependency``: every package aam declares, as installed;
- ``torch``: the PyTorch build, its CUDA and cuDNN versions (``none`` for a CPU build), and
  ``cuda_available``;
- ``gpu``: each GPU PyTorch sees, and the NVIDIA driver (from ``nvidia-smi``, when present);
- ``installed``: every other installed distribution (what QIIME 2 records as python-packages).

`declared_versions` is the cheap part (no torch import): the workflow passes it to the rule as a
parameter, so an upgrade of a package reruns the rule and the report shows the new table.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys

import pandas as pd

COLUMNS = ["kind", "name", "version"]


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _declared() -> list[str]:
    """Names of the packages aam requires (without extras such as dev)."""
    try:
        requires = importlib.metadata.requires("aam") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        names.append(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
    return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_versions() -> dict[str, str]:
    """aam's version and commit, and each declared dependency's installed version."""
    from aam.provenance import git_state, package_version

    commit, dirty = git_state()
    versions = {"aam": package_version()}
    if commit:
        versions["aam git commit"] = commit + ("-modified" if dirty else "")
    for name in _declared():
        # one lookup per declared package: the Snakefile calls this on every invocation, and
        # reading all ~280 installed distributions' metadata took half a second
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cudnn(code: int | None) -> str:
    """cuDNN's version number as text: 90100 -> 9.1.0 (major * 10000 + minor * 100 + patch)."""
    if not code:
        return "none"
    return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"


def _gpu_rows() -> list[tuple[str, str, str]]:
    import torch

    rows = [("torch", "torch", torch.__version__),
            ("torch", "cuda", torch.version.cuda or "none"),
            ("torch", "cudnn", _cudnn(torch.backends.cudnn.version())),
            ("torch", "cuda_available", str(torch.cuda.is_available()))]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(("gpu", f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                            f"compute capability {props.major}.{props.minor}"))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            rows.append(("gpu", "nvidia driver", done.stdout.strip().splitlines()[0]))
    return rows


def software_versions() -> pd.DataFrame:
    """The table described above."""
    rows = [("system", "platform", platform.platform()), ("system", "machine", platform.machine()),
            ("python", "python", f"{platform.python_implementation()} {sys.version.split()[0]}")]
    declared = declared_versions()
    rows += [("aam" if name.startswith("aam") else "dependency", name, version)
             for name, version in declared.items()]
    rows += _gpu_rows()
    listed = {_normalized(name) for name in declared} | {"aam"}
    rows += [("installed", name, version) for name, version in installed_packages().items()
             if _normalized(name) not in listed]
    return pd.DataFrame(rows, columns=COLUMNS)
