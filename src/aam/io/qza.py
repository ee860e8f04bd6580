"""QIIME 2 archives (.qza): check the semantic type, extract the payload, without QIIME 2.

A .qza is a zip file holding one top-level folder named by the artifact's UUID, with
``<uuid>/metadata.yaml`` (``uuid``, ``type``, ``format``) and the payload under ``<uuid>/data/``
(e.g. ``feature-table.biom``, ``tree.nwk``, ``dna-sequences.fasta``). Provenance folders hold
further ``metadata.yaml`` files of parent artifacts; only the top-level one describes the archive.
`read_archive` reads a whole archive (versions, type, every file, checksums) for checks of
archives written by :mod:`aam.io.qza_write`.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aam.errors import InputError

ZIP_MAGIC = b"PK\x03\x04"
# how a zip file starts: with its first member, or (an archive without members) its end record
ZIP_SIGNATURES = (ZIP_MAGIC, b"PK\x05\x06", b"PK\x07\x08")


def is_zip(path: str | os.PathLike) -> bool:
    """True when the file is to be read as a QIIME 2 archive: it starts like a zip file (an empty one
    included, which then fails as "an empty zip archive"). A file named ``.qza`` that is not a zip is
    an `InputError` saying so, rather than being read as another format and failing as that."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    if head.startswith(ZIP_SIGNATURES):
        return True
    if path.suffix.lower() == ".qza":
        what = "an empty file" if not head else "not a zip file"
        raise InputError(f"{path}: not a QIIME 2 archive ({what}, although named .qza)")
    return False


def _root(path: Path, zf: zipfile.ZipFile) -> str:
    if not zf.namelist():
        raise InputError(f"{path}: not a QIIME 2 archive (an empty zip archive)")
    roots = {name.split("/", 1)[0] for name in zf.namelist() if "/" in name}
    if len(roots) != 1:
        raise InputError(f"{path}: not a QIIME 2 archive (expected one top-level folder, found {len(roots)})")
    return roots.pop()


def _metadata(path: Path, zf: zipfile.ZipFile, root: str) -> dict[str, str]:
    try:
        text = zf.read(f"{root}/metadata.yaml").decode("utf-8")
    except KeyError:
        raise InputError(f"{path}: not a QIIME 2 archive (no {root}/metadata.yaml)") from None
    # metadata.yaml is three `key: value` lines; parse them without a YAML dependency on the format.
    meta = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s*(.*?)\s*$", line)
        if m:
            meta[m.group(1)] = m.group(2).strip("'\"")
    if "type" not in meta:
        raise InputError(f"{path}: not a QIIME 2 archive (metadata.yaml has no type)")
    return meta


def qza_type(path: str | os.PathLike) -> str:
    """The semantic type of an archive, e.g. ``FeatureTable[Frequency]``."""
    path = Path(path)
    with _open(path) as zf:
        return _metadata(path, zf, _root(path, zf))["type"]


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{path}: not a QIIME 2 archive ({err})") from None


def read_payload(
    path: str | os.PathLike, expected_types: tuple[str, ...], suffixes: tuple[str, ...]
) -> tuple[str, bytes]:
    """Check the archive's type against `expected_types`; return (type, bytes of the data file).

    The data file is the one file under ``<uuid>/data/`` whose name ends with one of `suffixes`
    (e.g. ``.biom``). A wrong type or a missing payload is an `InputError` naming the archive.
    """
    path = Path(path)
    with _open(path) as zf:
        root = _root(path, zf)
        sem_type = _metadata(path, zf, root)["type"]
        if sem_type not in expected_types:
            want = " or ".join(expected_types)
            raise InputError(f"{path}: QIIME 2 archive of type {sem_type}, expected {want}")
        members = [
            name
            for name in zf.namelist()
            if name.startswith(f"{root}/data/") and name.lower().endswith(suffixes) and not name.endswith("/")
        ]
        if len(members) != 1:
            raise InputError(
                f"{path}: QIIME 2 archive with {len(members)} data files ending in {'/'.join(suffixes)}, "
                "expected one"
            )
        try:
            return sem_type, zf.read(members[0])
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise InputError(f"{path}: corrupt QIIME 2 archive ({err})") from None


@dataclass
class Archive:
    """A whole archive as read: identity, versions, type and format, and every file by its path
    below the root folder (``data/...``, ``provenance/...``, ``checksums.md5``)."""

    uuid: str
    archive_version: str
    framework_version: str
    type: str
    format: str
    files: dict[str, bytes]

    def data(self) -> dict[str, bytes]:
        """The payload: files under ``data/`` by their name there."""
        return {name[len("data/"):]: body for name, body in self.files.items() if name.startswith("data/")}

    def checksum_mismatches(self) -> list[str]:
        """Files whose md5 differs from checksums.md5, and files listed there or present but not
        both (empty for an intact archive of version 5 or later)."""
        listed = {}
        for line in self.files.get("checksums.md5", b"").decode("utf-8").splitlines():
            digest, _, name = line.partition("  ")
            listed[name] = digest
        present = {name: hashlib.md5(body).hexdigest() for name, body in self.files.items()
                   if name != "checksums.md5"}
        return sorted(name for name in set(listed) | set(present) if listed.get(name) != present.get(name))


def read_archive(path: str | os.PathLike) -> Archive:
    """Read a whole archive; a file that is not a QIIME 2 archive is an `InputError` naming it."""
    path = Path(path)
    with _open(path) as zf:
        root = _root(path, zf)
        meta = _metadata(path, zf, root)
        try:
            version = zf.read(f"{root}/VERSION").decode("utf-8").splitlines()
        except KeyError:
            raise InputError(f"{path}: not a QIIME 2 archive (no {root}/VERSION)") from None
        if len(version) < 3 or version[0].strip() != "QIIME 2":
            raise InputError(f"{path}: not a QIIME 2 archive (VERSION does not start with 'QIIME 2')")
        files = {name[len(root) + 1:]: zf.read(name) for name in zf.namelist()
                 if name.startswith(f"{root}/") and not name.endswith("/")}
    if meta.get("uuid") != root:
        raise InputError(f"{path}: metadata.yaml names UUID {meta.get('uuid')}, the root folder {root}")
    return Archive(uuid=root, archive_version=version[1].split(":", 1)[1].strip(),
                   framework_version=version[2].split(":", 1)[1].strip(), type=meta["type"],
                   format=meta.get("format", ""), files=files)
