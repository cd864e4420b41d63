"""`functrans.numpy.linalg`: `norm`, `solve`, `inv`, `det`, `slogdet`, `cholesky`, `eigh`,
`eigvalsh`, `svd`, `svdvals`, `qr`."""

from __future__ import annotations

import numpy as _np

from .._src.core import Tracer, get_aval
from .._src.prims import elementwise as ew
from .._src.prims import linalg as la


def _fnp():
    from functrans import numpy as fnp

    return fnp


def _square(a, name):
    fnp = _fnp()
    a = a if isinstance(a, Tracer) else fnp.asarray(a)
    (a,) = fnp._promote(a, to_inexact=True)
    shp = get_aval(a).shape
    if len(shp) < 2 or shp[-1] != shp[-2]:
        raise ValueError(
            f"`functrans.numpy.linalg.{name}` needs square matrices in the last two axes, got an "
            f"array of shape {shp}."
        )
    return a


def solve(a, b):
    """Solve `a x = b` for `x`; `b` is a vector (`a.shape[:-1]`) or a stack of matrices."""
    fnp = _fnp()
    a = _square(a, "solve")
    (b,) = fnp._promote(b if isinstance(b, Tracer) else fnp.asarray(b), to_inexact=True)
    a, b = fnp._promote(a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    vector = len(sb) == 1 or (len(sb) == len(sa) - 1 and sb == sa[:-1])
    if vector:
        b = fnp.expand_dims(b, -1)
        sb = get_aval(b).shape
    if sb[-2] != sa[-1]:
        raise ValueError(f"`solve`: shapes {sa} and {get_aval(b).shape} are incompatible.")
    batch = ew._broadcast_shapes(sa[:-2], sb[:-2])
    a = fnp.broadcast_to(a, batch + sa[-2:])
    b = fnp.broadcast_to(b, batch + sb[-2:])
    x = la.solve(a, b)
    return fnp.squeeze(x, -1) if vector else x


def inv(a):
    fnp = _fnp()
    a = _square(a, "inv")
    aval = get_aval(a)
    eye = fnp.broadcast_to(_np.eye(aval.shape[-1], dtype=aval.dtype), aval.shape)
    return la.solve(a, eye)


def slogdet(a):
    return tuple(la.slogdet(_square(a, "slogdet")))


def det(a):
    sign, logdet = slogdet(a)
    fnp = _fnp()
    return fnp.multiply(sign, fnp.exp(logdet))


def cholesky(a):
    return la.cholesky(_square(a, "cholesky"))


def eigh(a, UPLO=None, symmetrize_input=True):  # noqa: N803  (NumPy's argument name)
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices, as `jnp.linalg.eigh`.

    Returns `(w, v)` with `a = v @ diag(w) @ v.T`. Derivatives assume distinct eigenvalues
    (as JAX's do); the sign of each eigenvector is arbitrary, so differentiate quantities
    that do not depend on it.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> a = fnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> [float(w) for w in fnp.linalg.eigh(a)[0]]
      [1.0, 3.0]
      >>> g = ft.grad(lambda a: fnp.linalg.eigvalsh(a)[1])(a)  # v v^T of the top pair
      >>> [[round(float(x), 4) for x in row] for row in g]
      [[0.5, 0.5], [0.5, 0.5]]
    """
    a = _square(a, "eigh")
    if symmetrize_input:
        a = ew.mul(ew.add(a, la.mT(a)), 0.5)
    v, w = la.eigh(a, lower=UPLO is None or UPLO == "L")
    return w, v


def eigvalsh(a, UPLO=None):  # noqa: N803
    """Eigenvalues (ascending) of symmetric matrices, as `jnp.linalg.eigvalsh`."""
    return eigh(a, UPLO)[0]


def _matrix(a, name):
    fnp = _fnp()
    a = a if isinstance(a, Tracer) else fnp.asarray(a)
    (a,) = fnp._promote(a, to_inexact=True)
    if get_aval(a).ndim < 2:
        raise ValueError(
            f"`functrans.numpy.linalg.{name}` needs matrices in the last two axes, got an array "
            f"of shape {get_aval(a).shape}."
        )
    return a


def svd(a, full_matrices=True, compute_uv=True):
    """Singular value decomposition `(u, s, vt)`, as `jnp.linalg.svd`.

    Derivatives assume distinct nonzero singular values (as JAX's do). Full matrices of a
    non-square input are not supported: pass `full_matrices=False`.
    """
    a = _matrix(a, "svd")
    m, n = get_aval(a).shape[-2:]
    if not compute_uv:
        return la.svd(a, compute_uv=False)[0]
    if full_matrices and m != n:
        raise NotImplementedError(
            "`functrans.numpy.linalg.svd` with `full_matrices=True` needs a square matrix, got "
            f"shape {(m, n)}; pass `full_matrices=False` for the reduced factors."
        )
    s, u, vt = la.svd(a)
    return u, s, vt


def svdvals(a):
    """Singular values, descending, as `jnp.linalg.svdvals`."""
    return svd(a, compute_uv=False)


def qr(a, mode="reduced"):
    """QR decomposition `(q, r)` in `"reduced"` mode (or `"r"`), as `jnp.linalg.qr`."""
    a = _matrix(a, "qr")
    if mode not in ("reduced", "r"):
        raise NotImplementedError(
            f'`functrans.numpy.linalg.qr` supports mode="reduced" and mode="r", got {mode!r}.'
        )
    q, r = la.qr(a)
    return r if mode == "r" else (q, r)


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """Vector or matrix norm, as `jax.numpy.linalg.norm` (ord None, 'fro', 1, 2, inf, p)."""
    fnp = _fnp()
    x = x if isinstance(x, Tracer) else fnp.asarray(x)
    (x,) = fnp._promote(x, to_inexact=True)
    nd = get_aval(x).ndim
    if axis is None:
        if ord is None:
            return fnp.sqrt(fnp.sum(x * x, keepdims=keepdims))
        axis = tuple(range(nd))
    axes = fnp._axes(axis, nd)
    if len(axes) == 1:
        ax = axes
        if ord is None or ord == 2:
            return fnp.sqrt(fnp.sum(x * x, axis=ax, keepdims=keepdims))
        if ord == _np.inf:
            return fnp.max(fnp.abs(x), axis=ax, keepdims=keepdims)
        if ord == -_np.inf:
            return fnp.min(fnp.abs(x), axis=ax, keepdims=keepdims)
        if ord == 0:
            return fnp.sum(fnp.asarray(x != 0, x.dtype), axis=ax, keepdims=keepdims)
        if ord == 1:
            return fnp.sum(fnp.abs(x), axis=ax, keepdims=keepdims)
        p = float(ord)
        return fnp.power(fnp.sum(fnp.power(fnp.abs(x), p), axis=ax, keepdims=keepdims), 1 / p)
    if len(axes) == 2:
        r, c = axes
        if ord is None or ord == "fro":
            return fnp.sqrt(fnp.sum(x * x, axis=axes, keepdims=keepdims))
        if ord in (1, -1):
            s = fnp.sum(fnp.abs(x), axis=r, keepdims=True)
            out = (fnp.max if ord == 1 else fnp.min)(s, axis=c, keepdims=True)
        elif ord in (_np.inf, -_np.inf):
            s = fnp.sum(fnp.abs(x), axis=c, keepdims=True)
            out = (fnp.max if ord == _np.inf else fnp.min)(s, axis=r, keepdims=True)
        else:
            raise NotImplementedError(
                f"`functrans.numpy.linalg.norm` does not support matrix ord={ord!r} yet (it "
                "needs singular values); supported: None, 'fro', 1, -1, inf, -inf."
            )
        return out if keepdims else fnp.squeeze(out, axis=axes)
    raise ValueError(f"Improper number of axes for a norm: {axis!r}.")
