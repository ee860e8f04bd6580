"""QIIME 2's archive rules (format 5), as its sources state them (tests/test_qza_export.py names
them): shared by the tests of every stage that writes a .qza."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
import zipfile
from pathlib import Path

import yaml

from aam.io.qza import read_archive

# provenance_lib/util.py's pattern for VERSION
VERSION_PATTERN = (r"QIIME 2\narchive: [0-9]{1,2}$\nframework: "
                   r"(?:20[0-9]{2}|2)\.(?:[1-9][0-2]?|0)\.[0-9](?:\.dev[0-9]?)?(?:\+[.\w]+)?\Z")


def check_archive(path: Path, kind: str, directory_format: str, data_files: list[str]):
    """The archive rules of QIIME 2's format 5; returns the archive as read."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    root = names[0].split("/")[0]
    assert str(uuid.UUID(root, version=4)) == root  # archiver._is_uuid4
    assert all(n.startswith(f"{root}/") and not n.endswith("/") for n in names)
    archive = read_archive(path)
    assert archive.uuid == root and archive.type == kind and archive.format == directory_format
    assert re.match(VERSION_PATTERN, archive.files["VERSION"].decode().strip(), re.MULTILINE)
    assert archive.archive_version == "5"
    assert yaml.safe_load(archive.files["metadata.yaml"]) == {
        "uuid": root, "type": kind, "format": directory_format}
    assert sorted(archive.data()) == sorted(data_files)
    for name in ("VERSION", "metadata.yaml"):
        assert archive.files[f"provenance/{name}"] == archive.files[name]
    assert "provenance/citations.bib" in archive.files
    assert archive.checksum_mismatches() == []
    action = yaml.safe_load(archive.files["provenance/action/action.yaml"])
    runtime = action["execution"]["runtime"]
    assert isinstance(runtime["start"], dt.datetime) and runtime["end"] >= runtime["start"]
    assert action["action"]["type"] == "import"
    assert {m["name"]: m["md5sum"] for m in action["action"]["manifest"]} == {
        name: hashlib.md5(body).hexdigest() for name, body in archive.data().items()}
    assert action["environment"]["plugins"]["aam"]["version"]
    assert action["action"]["aam"]["settings"]["type"] == kind
    return archive
