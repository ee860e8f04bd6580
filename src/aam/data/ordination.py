"""Principal coordinates (PCoA) of a distance matrix on disk, exact for small N, streamed for large N.

PCoA takes the top eigenpairs of the Gower-centred matrix ``F = E - r 1' - 1 r' + g 11'`` with
``E = -D o D / 2``, ``r`` its row means and ``g`` their mean (scikit-bio's ``center_distance_matrix``);
coordinates are eigenvectors x sqrt(eigenvalue) (zero where the eigenvalue is negative) and the
proportion explained is eigenvalue / trace(F), with ``trace(F) = -n g`` (scikit-bio's convention
when fewer axes than samples are kept).

- exact (``eigh``): scikit-bio's ``pcoa(method="eigh")`` on the matrix in memory: for N up to a
  threshold (the matrix is then small; eigh is O(N^3) anyway).
- ``fsvd``: randomized subspace iteration (Halko, Martinsson & Tropp 2011; the method behind
  scikit-bio's and unifrac's FSVD), written here because both of theirs need the N x N matrix in
  memory. ``F X`` is computed from row blocks of D read from the file (``E X - r (1'X) - 1 (r'X) +
  g 1 (1'X)``), so memory is O(block x N + N x l) for l = 2k + 10 search vectors. Each iteration
  is one pass over the file; iterations stop when every one of the k Ritz pairs has a residual
  ``||F u - lambda u|| <= tol x lambda_1`` (default 1e-6), an a posteriori bound that also bounds
  the eigenvalue error (by the residual) and the vector error (by residual / gap to the next
  eigenvalue). Seeded: the same seed gives the same result.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from aam.io.distance_matrix import MatrixFile

log = logging.getLogger(__name__)

METHODS = ("auto", "eigh", "fsvd")


def pcoa(matrix: MatrixFile, dimensions: int, method: str = "auto", exact_max_samples: int = 2000,
         seed: int = 0, block_rows: int = 512, tol: float = 1e-6, max_iterations: int = 100):
    """PCoA of a distance matrix file: (skbio.OrdinationResults, method used: "eigh" or "fsvd")."""
    if method not in METHODS:
        raise ValueError(f"PCoA method must be one of {METHODS}, got {method!r}")
    n = matrix.n
    dims = max(1, min(int(dimensions), n - 1)) if n > 1 else 1
    if method == "eigh" or (method == "auto" and n <= exact_max_samples) or n <= dims + 2:
        from skbio.stats.ordination import pcoa as skbio_pcoa

        t0 = time.perf_counter()
        result = skbio_pcoa(matrix.to_skbio(), method="eigh", dimensions=dims, warn_neg_eigval=False)
        log.info("PCoA (exact, eigh) of %d samples: %d axes in %.1f s", n, dims, time.perf_counter() - t0)
        return result, "eigh"
    return streamed_pcoa(matrix, dims, seed=seed, block_rows=block_rows, tol=tol,
                         max_iterations=max_iterations), "fsvd"


def _centring(matrix: MatrixFile, block_rows: int) -> tuple[np.ndarray, float]:
    """Row means r of E = -D o D / 2 and their mean g (one pass)."""
    r = np.empty(matrix.n)
    for start, stop, block in matrix.row_blocks(block_rows):
        r[start:stop] = -0.5 * np.einsum("ij,ij->i", block, block) / matrix.n
    return r, float(r.mean())


def _apply(matrix: MatrixFile, x: np.ndarray, r: np.ndarray, g: float, block_rows: int) -> np.ndarray:
    """F @ x for the centred matrix F, one pass over the file."""
    out = np.empty_like(x)
    for start, stop, block in matrix.row_blocks(block_rows):
        np.square(block, out=block)
        out[start:stop] = -0.5 * (block @ x)
    colsum = x.sum(0)
    out -= r[:, None] * colsum[None, :]
    out -= (r @ x)[None, :]
    out += g * colsum[None, :]
    return out


def streamed_pcoa(matrix: MatrixFile, dimensions: int, seed: int = 0, block_rows: int = 512,
                  tol: float = 1e-6, max_iterations: int = 100):
    """The top `dimensions` principal coordinates by randomized subspace iteration over row blocks
    of the matrix file (see the module docstring); logs a line per pass."""
    from skbio import OrdinationResults

    n, k = matrix.n, int(dimensions)
    width = min(n, 2 * k + 10)
    t0 = time.perf_counter()
    r, g = _centring(matrix, block_rows)
    trace = -n * g
    log.info("PCoA (fsvd) of %d samples: centring pass done (%.0f s); %d search vectors, tol %.0e",
             n, time.perf_counter() - t0, width, tol)
    rng = np.random.default_rng([seed, n])
    q, _ = np.linalg.qr(rng.standard_normal((n, width)))
    for iteration in range(1, max_iterations + 1):
        y = _apply(matrix, q, r, g, block_rows)
        small = q.T @ y
        values, vectors = np.linalg.eigh((small + small.T) / 2)
        top = np.argsort(values)[::-1]
        values, vectors = values[top], vectors[:, top]
        ritz = q @ vectors[:, :k]
        residual = np.linalg.norm(y @ vectors[:, :k] - ritz * values[:k], axis=0).max()
        residual /= max(values[0], 1e-300)
        log.info("PCoA (fsvd): pass %d, largest residual %.1e (%.0f s)", iteration, residual,
                 time.perf_counter() - t0)
        if residual <= tol:
            break
        q, _ = np.linalg.qr(y)
    else:
        log.warning("PCoA (fsvd): residual %.1e after %d passes is above tol %.0e; coordinates are "
                    "approximate", residual, max_iterations, tol)
    eigvals = values[:k].copy()
    positive = eigvals > 0
    eigvals[~positive] = 0.0
    # a deterministic sign per axis (eigenvectors have none): the largest entry positive
    signs = np.sign(ritz[np.abs(ritz).argmax(0), np.arange(k)])
    coords = ritz * np.where(signs == 0, 1.0, signs) * np.sqrt(eigvals)
    axes = [f"PC{i + 1}" for i in range(k)]
    return OrdinationResults(
        short_method_name="PCoA",
        long_method_name="Approximate Principal Coordinate Analysis using FSVD (streamed subspace iteration)",
        eigvals=pd.Series(eigvals, index=axes),
        samples=pd.DataFrame(coords, index=matrix.ids, columns=axes),
        proportion_explained=pd.Series(eigvals / trace, index=axes),
    )
