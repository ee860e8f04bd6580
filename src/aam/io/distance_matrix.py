"""Distance matrices on disk: scikit-bio's TSV and the HDF5 layout of biocore's `unifrac` package.

TSV (``.tsv``): scikit-bio's lsmat format, what ``skbio.DistanceMatrix.read`` and ``qiime tools
import --type DistanceMatrix`` read. A header line of tab-separated IDs (after an empty first
field), then one line per sample: its ID and its distances, written as scikit-bio writes them
(``numpy`` shortest repr, so float64 values read back exactly).

HDF5 (``.h5``): the single-matrix layout of the `unifrac` package (Striped UniFrac's
``write_mat_from_matrix_hdf5`` in unifrac-binaries' api.cpp; read by ``unifrac.h5unifrac`` and
``unifrac.h5pcoa`` in unifrac 1.5's ``_methods.py``), so its tools and QIIME 2 users read our files:

=============================== ===========================================================
``format``, ``version``         one fixed-length string each: ``BDSM``, ``2020.12``
``order``                       the sample IDs, variable-length ASCII strings
``matrix``                      n x n distances, float64 (``H5T_IEEE_F64LE``) or float32
                                (``F32LE``, as unifrac's ``*_fp32`` methods write)
``pcoa_method``                 ``FSVD`` (randomized) or ``EIGH`` (exact), when a PCoA is stored
``pcoa_eigvals``                k eigenvalues; ``pcoa_proportion_explained`` k values;
``pcoa_samples``                n x k coordinates (all three in the matrix's float type)
=============================== ===========================================================

Where ours differs from unifrac's writer, invisibly to readers: ``matrix`` is stored in chunks of
block x block values (unifrac writes it contiguous), because we write it tile by tile and a
fanned-out job writes only its own tiles (unwritten chunks take no space); merging the jobs'
files then copies raw chunks. No compression: distances barely compress.

Reading (`open_matrix`) detects the format from the file's first bytes and gives row blocks, so a
matrix of any size is read with memory bounded by the block.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from aam.errors import InputError
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)

FORMATS = ("tsv", "hdf5")
SUFFIX = {"tsv": ".tsv", "hdf5": ".h5"}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_FORMAT, HDF5_VERSION = "BDSM", "2020.12"
PROGRESS_SECONDS = 30.0  # a progress line at most this often during long steps


def choose_format(setting: str, n_samples: int, binary_min_samples: int) -> str:
    """The format of a matrix of `n_samples`: `setting` itself, or for ``auto`` HDF5 from
    `binary_min_samples` samples on (a TSV grows to ~22 bytes per pair: 55 GB at 50,000 samples)."""
    if setting == "auto":
        return "hdf5" if n_samples >= binary_min_samples else "tsv"
    if setting not in FORMATS:
        raise InputError(f"distance matrix format must be auto, tsv or hdf5, got {setting!r}")
    return setting


def format_for_table(setting: str, table: str | os.PathLike, binary_min_samples: int) -> str:
    """`choose_format` for the samples of a table file, counted from its header before anything runs
    (the workflow names the matrix file from it); a table that cannot be read yet counts as small."""
    from aam.io.biom import count_samples

    if setting != "auto":
        return choose_format(setting, 0, binary_min_samples)
    return choose_format(setting, count_samples(table) or 0, binary_min_samples)


class Progress:
    """Logs `what i/n (elapsed, ETA)` at most every PROGRESS_SECONDS, and once at the end."""

    def __init__(self, what: str, total: int, unit: str = ""):
        self.what, self.total, self.unit = what, max(int(total), 1), unit
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / max(done, 1) * (self.total - done)
        log.info("%s: %d/%d%s (%.0f s, about %.0f s left)", self.what, done, self.total, self.unit,
                 elapsed, eta)


# ------------------------------------------------------------------------------------------ HDF5
HDF5_OVERHEAD = 1 << 16  # bytes of an HDF5 file beyond its data (superblock, headers, chunk index)


def _write_fixed_string(group: h5py.Group, name: str, text: str) -> None:
    """A one-element fixed-length, space-padded (Fortran) string dataset, as unifrac writes."""
    data = text.encode("ascii")
    file_type = h5py.h5t.FORTRAN_S1.copy()
    file_type.set_size(len(data))
    space = h5py.h5s.create_simple((1,))
    dataset = h5py.h5d.create(group.id, name.encode(), file_type, space)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([data], dtype=f"S{len(data)}"))


def _order_dtype(ids: Sequence[str]):
    """ASCII variable-length strings (what unifrac writes and decodes); UTF-8 only if an ID needs it."""
    try:
        for sample in ids:
            sample.encode("ascii")
    except UnicodeEncodeError:
        return h5py.string_dtype("utf-8")
    return h5py.string_dtype("ascii")


class Hdf5MatrixWriter:
    """Writes an n x n distance matrix into an HDF5 file in unifrac's layout, tile by tile.

    `put(r0, r1, c0, c1, block)` writes a tile of the upper triangle and, off the diagonal, its
    transpose; tiles should follow the chunk grid (`chunk` x `chunk`) so each write fills whole
    chunks. Use as a context manager on a path that is not yet the final output (atomic_path)."""

    def __init__(self, path: str | os.PathLike, ids: Sequence[str], dtype=np.float64, chunk: int = 512):
        self.ids = [str(s) for s in ids]
        n = len(self.ids)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"distance matrices are float64 or float32, not {self.dtype}")
        _check_space(Path(path), n * n * self.dtype.itemsize)
        self.file = h5py.File(path, "w")
        _write_fixed_string(self.file, "format", HDF5_FORMAT)
        _write_fixed_string(self.file, "version", HDF5_VERSION)
        self.file.create_dataset("order", data=np.array(self.ids, dtype=object), dtype=_order_dtype(self.ids))
        side = max(1, min(int(chunk), n))
        self.matrix = self.file.create_dataset("matrix", shape=(n, n), dtype=self.dtype.newbyteorder("<"),
                                               chunks=(side, side) if n else None)

    def put(self, r0: int, r1: int, c0: int, c1: int, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=self.dtype)
        self.matrix[r0:r1, c0:c1] = block
        if (r0, r1) != (c0, c1):
            self.matrix[c0:c1, r0:r1] = block.T

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Hdf5MatrixWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_space(path: Path, n_bytes: int) -> None:
    """An OSError (ENOSPC, naming `path`) when the disk lacks room for the matrix, before HDF5 starts:
    the HDF5 library, writing to a full disk itself, fails in ways Python cannot always catch (a
    second traceback at garbage collection, a crash), while this fails as one line
    (`aam.io.atomic` reports it). The disk may still fill while writing; that stays HDF5's error."""
    free = shutil.disk_usage(path.parent).free
    if n_bytes + HDF5_OVERHEAD > free:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the matrix needs {n_bytes / 1e9:.3g} GB, "
                      f"{free / 1e9:.3g} GB are free)", str(path))


def add_pcoa(path: str | os.PathLike, ordination, method: str) -> None:
    """Store a PCoA (skbio OrdinationResults of the matrix's samples, in order) where unifrac puts
    its own: ``pcoa_method``, ``pcoa_eigvals``, ``pcoa_samples``, ``pcoa_proportion_explained``."""
    with h5py.File(path, "r+") as fh:
        dtype = fh["matrix"].dtype
        for name in ("pcoa_method", "pcoa_eigvals", "pcoa_samples", "pcoa_proportion_explained"):
            if name in fh:
                del fh[name]
        _write_fixed_string(fh, "pcoa_method", method.upper())
        fh.create_dataset("pcoa_eigvals", data=ordination.eigvals.to_numpy().astype(dtype))
        fh.create_dataset("pcoa_samples", data=ordination.samples.to_numpy().astype(dtype))
        fh.create_dataset("pcoa_proportion_explained",
                          data=ordination.proportion_explained.to_numpy().astype(dtype))


def write_hdf5_tiles(path: str | os.PathLike, ids: Sequence[str], tiles: Iterable[tuple[int, int, int, int]],
                     compute: Callable[[int, int, int, int], np.ndarray], dtype=np.float64,
                     chunk: int = 512, what: str = "distance matrix") -> None:
    """Compute `tiles` of the upper triangle with `compute(r0, r1, c0, c1)` and write each as it
    comes (memory: one tile), logging progress. `path` is written in place: give a temporary one."""
    tiles = list(tiles)
    progress = Progress(f"{what}: tiles computed and written", len(tiles))
    with Hdf5MatrixWriter(path, ids, dtype=dtype, chunk=chunk) as writer:
        for done, (r0, r1, c0, c1) in enumerate(tiles, 1):
            writer.put(r0, r1, c0, c1, compute(r0, r1, c0, c1))
            progress.update(done)


def merge_parts(parts: Sequence[str | os.PathLike], path: str | os.PathLike) -> None:
    """One matrix file from the files of fanned-out jobs (each holding its own tiles of the same
    matrix): raw chunks are copied, none decoded. InputError if the parts disagree on the samples,
    shape or storage, if two parts hold one chunk, or if a chunk is missing from all of them."""
    if not parts:
        raise InputError("no part files to merge")
    with h5py.File(parts[0], "r") as first:
        ids = [_text(s) for s in first["order"][:]]
        ref = first["matrix"]
        dtype, chunks, shape = ref.dtype, ref.chunks, ref.shape
    n = len(ids)
    expected = int(np.prod([-(-s // c) for s, c in zip(shape, chunks, strict=True)])) if n else 0
    seen: set[tuple[int, ...]] = set()
    progress = Progress("merging the parts' chunks", expected)
    with Hdf5MatrixWriter(path, ids, dtype=dtype, chunk=chunks[0] if chunks else 1) as writer:
        out = writer.matrix.id
        for part in parts:
            with h5py.File(part, "r") as fh:
                matrix = fh["matrix"]
                if [_text(s) for s in fh["order"][:]] != ids:
                    raise InputError(f"{part}: its samples differ from those of {parts[0]}")
                if (matrix.dtype, matrix.chunks, matrix.shape) != (dtype, chunks, shape):
                    raise InputError(f"{part}: its matrix is stored otherwise than that of {parts[0]}")
                for i in range(matrix.id.get_num_chunks()):
                    offset = matrix.id.get_chunk_info(i).chunk_offset
                    if offset in seen:
                        raise InputError(f"{part}: chunk at {offset} is also in another part")
                    seen.add(offset)
                    mask, data = matrix.id.read_direct_chunk(offset)
                    out.write_direct_chunk(offset, data, mask)
                    progress.update(len(seen))
    if len(seen) != expected:
        raise InputError(f"the parts hold {len(seen)} of the matrix's {expected} chunks; a part is missing")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------------------ reading
class MatrixFile:
    """A distance matrix on disk (TSV or HDF5), read in row blocks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                magic = fh.read(len(HDF5_MAGIC))
        except FileNotFoundError:
            raise InputError(f"{self.path}: file not found") from None
        self.format = "hdf5" if magic == HDF5_MAGIC else "tsv"
        if self.format == "hdf5":
            with h5py.File(self.path, "r") as fh:
                name = "matrix" if "matrix" in fh else "matrix:0"  # unifrac's multi-matrix files
                if name not in fh or "order" not in fh:
                    raise InputError(f"{self.path}: HDF5 file without 'matrix' and 'order' "
                                     "(not a distance matrix)")
                self.ids = [_text(s) for s in fh["order"][:]]
                self.dataset = name
                self.dtype = fh[name].dtype
                if fh[name].shape != (len(self.ids), len(self.ids)):
                    raise InputError(f"{self.path}: matrix of shape {fh[name].shape} for {len(self.ids)} IDs")
        else:
            with open(self.path) as fh:
                header = fh.readline().rstrip("\n").split("\t")
            if len(header) < 2 or header[0].strip():
                raise InputError(f"{self.path}: not a distance matrix "
                                 "(a TSV must start with a tab, then the IDs)")
            self.ids = [s.strip() for s in header[1:]]
            self.dtype = np.dtype(np.float64)

    @property
    def n(self) -> int:
        return len(self.ids)

    def row_blocks(self, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, float64 rows start:stop) over the whole matrix, `rows` at a time."""
        rows = max(1, int(rows))
        if self.format == "hdf5":
            with h5py.File(self.path, "r") as fh:
                matrix = fh[self.dataset]
                for start in range(0, self.n, rows):
                    stop = min(start + rows, self.n)
                    yield start, stop, matrix[start:stop].astype(np.float64)
            return
        with open(self.path) as fh:
            fh.readline()
            start, block = 0, []
            for number, line in enumerate(fh, 2):
                if not line.strip():
                    continue
                sample, _, values = line.rstrip("\n").partition("\t")
                row = np.array(values.split("\t"), dtype=np.float64) if values else np.zeros(0)
                if sample.strip() != self.ids[start + len(block)] or row.size != self.n:
                    raise InputError(f"{self.path}, line {number}: expected the row of "
                                     f"'{self.ids[start + len(block)]}' with {self.n} values")
                block.append(row)
                if len(block) == rows or start + len(block) == self.n:
                    yield start, start + len(block), np.vstack(block)
                    start, block = start + len(block), []
        if start != self.n:
            raise InputError(f"{self.path}: {start} rows for {self.n} IDs")

    def to_array(self) -> np.ndarray:
        """The whole matrix in memory (float64): for small matrices only."""
        out = np.empty((self.n, self.n))
        for start, stop, block in self.row_blocks(max(1, (1 << 24) // max(self.n, 1))):
            out[start:stop] = block
        return out

    def to_skbio(self):
        """The whole matrix as a skbio.DistanceMatrix (small matrices only)."""
        import skbio

        return skbio.DistanceMatrix(self.to_array(), ids=self.ids)


def open_matrix(path: str | os.PathLike) -> MatrixFile:
    """A distance matrix file, TSV or HDF5 (detected from its first bytes)."""
    return MatrixFile(path)


def write_tsv(matrix: MatrixFile, path: str | os.PathLike, rows: int = 256) -> None:
    """Write `matrix` as scikit-bio's TSV (what DistanceMatrix.write(format='lsmat') writes, byte for
    byte for float64 values), row block by row block, atomically."""
    progress = Progress(f"writing {Path(path).name}", matrix.n, " rows")
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(["", *matrix.ids]) + "\n")
        for start, stop, block in matrix.row_blocks(rows):
            if matrix.dtype == np.float32:
                block = block.astype(np.float32)
            for sample, row in zip(matrix.ids[start:stop], block, strict=True):
                fh.write(sample + "\t" + "\t".join(np.asarray(row, dtype=str)) + "\n")
            progress.update(stop)
