"""Write QIIME 2 archives (.qza) without QIIME 2 (it is not on PyPI), per its archive format 5.

Layout (qiime2/core/archive: archiver.py, format/v0.py, v1.py, v5.py; provenance.py)::

    <uuid>/VERSION                 "QIIME 2\\narchive: 5\\nframework: <version>\\n"
    <uuid>/metadata.yaml           uuid, type, format
    <uuid>/data/<payload files>    the directory format's files
    <uuid>/provenance/VERSION, metadata.yaml           copies of the two above
    <uuid>/provenance/action/action.yaml              execution, action (an import), transformers,
                                                       environment
    <uuid>/provenance/citations.bib
    <uuid>/checksums.md5           md5 of every other file, "<md5>  <relative path>" per line

The UUID is a version-4 UUID (QIIME 2 refuses others), and the zip holds files only (no folder
entries), the root folder's files first: QIIME 2's provenance parser takes the root UUID from the
first entry and checks checksums.md5 against every entry. Archive version 5 is read by every
QIIME 2 release since 2018.11 (version 6, from 2023.5, only adds an execution context; 7, from
2025.4, changes the checksums to sha512 and would lock out older releases).

The data was made outside QIIME 2, so the provenance records an import (``action: type:
import``, as ``qiime tools import`` does) with the payload's md5 manifest; what made it in this
package (version, git commit, the command's settings and the source's own provenance) sits under
``action: aam:``, a key QIIME 2 ignores and a reader of action.yaml sees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import platform
import sys
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aam.io.atomic import atomic_path

ARCHIVE_VERSION = "5"
# The VERSION file must name a QIIME 2 framework release (provenance parsers check its pattern):
# the last release that wrote archive version 5, the format followed here.
FRAMEWORK_VERSION = "2023.2.0"
AAM_WEBSITE = "https://github.com/aam-workflow/aam"


class _Dumper(yaml.SafeDumper):
    """YAML as QIIME 2 writes it: block style, 4-space indent, keys in insertion order, unquoted
    ISO-8601 timestamps, multi-line strings as literal blocks."""


def _timestamp(dumper: yaml.SafeDumper, value: dt.datetime) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat())


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(dt.datetime, _timestamp)
_Dumper.add_representer(str, _text)


def _dump(section: str, value: Any) -> str:
    return yaml.dump({section: value}, Dumper=_Dumper, default_flow_style=False, indent=4, sort_keys=False)


def _duration(seconds: float) -> str:
    """QIIME 2's wording of a run time, e.g. '1 second, and 5034 microseconds'."""
    micro = int(round(seconds * 1e6))
    parts = []
    for name, size in (("hour", 3_600_000_000), ("minute", 60_000_000), ("second", 1_000_000)):
        count, micro = divmod(micro, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    if micro or not parts:
        parts.append(f"{micro} microsecond{'s' if micro != 1 else ''}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


def action_yaml(start: dt.datetime, end: dt.datetime, import_format: str, directory_format: str,
                manifest: Mapping[str, bytes], aam_record: Mapping[str, Any]) -> str:
    """action.yaml of an import: execution, action, transformers and environment sections."""
    from aam.provenance import package_version
    from aam.versions import installed_packages

    execution = {"uuid": str(uuid.uuid4()),
                 "runtime": {"start": start, "end": end,
                             "duration": _duration((end - start).total_seconds())}}
    action = {
        "type": "import",
        "format": import_format,
        "manifest": [{"name": name, "md5sum": hashlib.md5(data).hexdigest()}
                     for name, data in manifest.items()],
        "aam": dict(aam_record),
    }
    transformers = {"output": [{"from": directory_format, "to": directory_format}]}
    environment = {
        "platform": f"{sys.platform}-{platform.machine()}",
        "python": "\n".join(line.strip() for line in sys.version.split("\n")),
        "framework": {"version": FRAMEWORK_VERSION, "website": "https://qiime2.org"},
        "plugins": {"aam": {"version": package_version(), "website": AAM_WEBSITE}},
        "python-packages": installed_packages(),
    }
    return "\n".join([_dump("execution", execution), _dump("action", action),
                      _dump("transformers", transformers), _dump("environment", environment)])


def write_qza(path: str | os.PathLike, semantic_type: str, directory_format: str, import_format: str,
              files: Mapping[str, bytes], aam_record: Mapping[str, Any]) -> str:
    """Write one artifact atomically; returns its UUID.

    `files` are the payload (names relative to ``data/``, as the directory format wants them);
    `import_format` the file format the payload would be imported from (e.g. ``LSMatFormat``);
    `aam_record` what made the data (recorded under ``action: aam:``).
    """
    start = dt.datetime.now(dt.UTC).astimezone()
    root = str(uuid.uuid4())
    version = f"QIIME 2\narchive: {ARCHIVE_VERSION}\nframework: {FRAMEWORK_VERSION}\n".encode()
    metadata = _dump_plain({"uuid": root, "type": semantic_type, "format": directory_format}).encode()
    end = dt.datetime.now(dt.UTC).astimezone()
    action = action_yaml(start, end, import_format, directory_format, files, aam_record).encode()
    members: dict[str, bytes] = {"VERSION": version, "metadata.yaml": metadata}
    members.update({f"data/{name}": data for name, data in files.items()})
    members.update({
        "provenance/VERSION": version,
        "provenance/metadata.yaml": metadata,
        "provenance/citations.bib": b"",
        "provenance/action/action.yaml": action,
    })
    members["checksums.md5"] = "".join(
        f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in sorted(members.items())
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        first = ("VERSION", "metadata.yaml", "checksums.md5")
        for name in [*first, *(name for name in members if name not in first)]:
            zf.writestr(_entry(f"{root}/{name}"), members[name])
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
    return root


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry dated 1980-01-01 (zip's earliest date), not by the clock: the archive then
    differs between two runs only where QIIME 2 wants it to, in its UUIDs and the execution's
    start and end (action.yaml), which record when and as what it was made."""
    entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16  # rw-r--r-- once extracted
    return entry


def _dump_plain(mapping: Mapping[str, Any]) -> str:
    """metadata.yaml: three plain `key: value` lines, as QIIME 2 writes them."""
    return yaml.safe_dump(dict(mapping), default_flow_style=False, sort_keys=False)
