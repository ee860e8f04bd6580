"""Principal coordinates (PCoA) of a distance matrix on disk, exact for small N, streamed for large N.

PCoA takes the top eigenpairs of the Gower-centred matrix ``F = E - r 1' - 1 r' + g 11'`` with
``E = -D o D / 2``, ``r`` its row means and ``g`` their mean (scikit-bio's ``center_distance_matrix``);
coordinates are eigenvectors x sqrt(eigenvalue) (zero where the eigenvalue is negative) and the
proportion explained is eigenvalue / trace(F), with ``trace(F) = -n g`` (scikit-bio's convention
when fewer axes than samples are kept).

- exact (``eigh``): scikit-bio's ``pcoa(method="eigh")`` on the matrix in memory: for N up to a
  threshold (the matrix is then small; eigh is O(N^3) anyway).
- ``fsvd``: randomized block Krylov iteration (Halko, Martinsson & Tropp 2011; Musco & Musco 2015;
  the family of scikit-bio's and unifrac's FSVD), written here because both of theirs need the
  N x N matrix in memory. ``F X`` is computed from row blocks of D read from the file (``E X -
  r (1'X) - 1 (r'X) + g 1 (1'X)``), so memory is O(block x N + N x l x passes) for l = 2k + 10
  search vectors per pass. Each pass over the file extends the search space; passes stop when
  every one of the k Ritz pairs has a residual
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


def _pass(matrix: MatrixFile, x: np.ndarray, block_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the file: (E @ x, row means of E) for E = -D o D / 2."""
    out = np.empty_like(x)
    means = np.empty(matrix.n)
    for start, stop, block in matrix.row_blocks(block_rows):
        np.square(block, out=block)
        block *= -0.5
        means[start:stop] = block.sum(1) / matrix.n
        out[start:stop] = block @ x
    return out, means


def _centre(ex: np.ndarray, x: np.ndarray, r: np.ndarray, g: float) -> np.ndarray:
    """F @ x from E @ x: F = E - r 1' - 1 r' + g 11' (r: row means of E, g: their mean)."""
    colsum = x.sum(0)
    return ex - r[:, None] * colsum[None, :] - (r @ x)[None, :] + g * colsum[None, :]


def streamed_pcoa(matrix: MatrixFile, dimensions: int, seed: int = 0, block_rows: int = 512,
                  tol: float = 1e-6, max_iterations: int = 100):
    """The top `dimensions` principal coordinates by randomized block Krylov iteration over row
    blocks of the matrix file (see the module docstring); logs a line per pass.

    The search space is the Krylov space [Q0, F Q0, F^2 Q0, ...] of a Gaussian start Q0 (width
    l = 2k + 10), orthonormalized as it grows; each pass over the file adds one block, and the
    Rayleigh-Ritz pairs of the whole space are checked after each pass. Block Krylov needs far fewer
    passes than plain subspace iteration when eigenvalues decay slowly, as UniFrac's do (Musco &
    Musco 2015); the first pass also gives the centring (row means)."""
    from skbio import OrdinationResults

    n, k = matrix.n, int(dimensions)
    width = min(n, 2 * k + 10)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, n])
    basis, _ = np.linalg.qr(rng.standard_normal((n, width)))  # K: orthonormal columns
    images = None  # F @ K
    r = g = None
    residual = np.inf
    for iteration in range(1, max_iterations + 1):
        block = basis if images is None else basis[:, images.shape[1]:]
        ex, means = _pass(matrix, block, block_rows)
        if r is None:
            r, g = means, float(means.mean())
        fx = _centre(ex, block, r, g)
        images = fx if images is None else np.hstack([images, fx])
        small = basis.T @ images
        values, vectors = np.linalg.eigh((small + small.T) / 2)
        top = np.argsort(values)[::-1][:k]
        values, vectors = values[top], vectors[:, top]
        ritz = basis @ vectors
        residual = np.linalg.norm(images @ vectors - ritz * values, axis=0).max() / max(values[0], 1e-300)
        log.info("PCoA (fsvd): pass %d, search space %d, largest residual %.1e (%.0f s)", iteration,
                 basis.shape[1], residual, time.perf_counter() - t0)
        if residual <= tol or basis.shape[1] + width > n:
            break
        fresh = fx - basis @ (basis.T @ fx)
        fresh -= basis @ (basis.T @ fresh)  # twice: orthogonal to working precision
        fresh, _ = np.linalg.qr(fresh)
        basis = np.hstack([basis, fresh])
    if residual > tol:
        log.warning("PCoA (fsvd): residual %.1e after %d passes is above tol %.0e; coordinates are "
                    "approximate", residual, iteration, tol)
    trace = -n * g
    eigvals = values[:k].copy()
    positive = eigvals > 0
    eigvals[~positive] = 0.0
    # a deterministic sign per axis (eigenvectors have none): the largest entry positive
    signs = np.sign(ritz[np.abs(ritz).argmax(0), np.arange(k)])
    coords = ritz * np.where(signs == 0, 1.0, signs) * np.sqrt(eigvals)
    axes = [f"PC{i + 1}" for i in range(k)]
    return OrdinationResults(
        short_method_name="PCoA",
        long_method_name="Approximate Principal Coordinate Analysis using FSVD (streamed block Krylov)",
        eigvals=pd.Series(eigvals, index=axes),
        samples=pd.DataFrame(coords, index=matrix.ids, columns=axes),
        proportion_explained=pd.Series(eigvals / trace, index=axes),
    )
