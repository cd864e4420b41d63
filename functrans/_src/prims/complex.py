"""Complex numbers: `real`, `imag`, `conj` and `complex`, with JAX's differentiation convention.

Like JAX, functrans transposes linear maps instead of taking adjoints: the VJP of a
holomorphic function multiplies by its derivative without conjugation, and `grad` of a
real-valued function of a complex input is `df/dx - i df/dy` (the conjugate of the
steepest-ascent direction). The transposes below follow from that convention: `real` maps a
cotangent `c` back to `c + 0i`, `imag` to `0 - ci`, `complex(x, y)` to `(real(c), -imag(c))`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import _broadcast_shapes, broadcast_batcher, neg, unbroadcast


def _real_dtype(dtype):
    return np.finfo(dtype).dtype  # complex64 -> float32, complex128 -> float64


def _complex_dtype(dtype):
    return np.result_type(dtype, np.complex64)


def _zeros(like_aval):
    return jnp.zeros(like_aval.shape, like_aval.dtype)


# =============================================================================================
# real, imag: complex -> real
# =============================================================================================

real_p = Primitive("real")
real_p.impl = jnp.real
real_p.abstract_eval = lambda x: ShapedArray(get_aval(x).shape, _real_dtype(get_aval(x).dtype))
real_p.jvp = lambda primals, tangents: (real(primals[0]), real(tangents[0]))
real_p.vjp = lambda needs, ct, out, x: (complex_(ct, _zeros(get_aval(ct))),)
real_p.batch = broadcast_batcher(real_p)

imag_p = Primitive("imag")
imag_p.impl = jnp.imag
imag_p.abstract_eval = lambda x: ShapedArray(get_aval(x).shape, _real_dtype(get_aval(x).dtype))
imag_p.jvp = lambda primals, tangents: (imag(primals[0]), imag(tangents[0]))
imag_p.vjp = lambda needs, ct, out, x: (complex_(_zeros(get_aval(ct)), neg(ct)),)
imag_p.batch = broadcast_batcher(imag_p)


def real(x):
    if not jnp.issubdtype(get_aval(x).dtype, jnp.complexfloating):
        return x
    return real_p.bind(x)


def imag(x):
    aval = get_aval(x)
    if not jnp.issubdtype(aval.dtype, jnp.complexfloating):
        return jnp.zeros(aval.shape, aval.dtype)
    return imag_p.bind(x)


# =============================================================================================
# conj: complex -> complex (linear over the reals; its transpose is itself)
# =============================================================================================

conj_p = Primitive("conj")
conj_p.impl = jnp.conj
conj_p.abstract_eval = lambda x: get_aval(x)
conj_p.jvp = lambda primals, tangents: (conj(primals[0]), conj(tangents[0]))
conj_p.vjp = lambda needs, ct, out, x: (conj(ct),)
conj_p.batch = broadcast_batcher(conj_p)


def conj(x):
    if not jnp.issubdtype(get_aval(x).dtype, jnp.complexfloating):
        return x
    return conj_p.bind(x)


# =============================================================================================
# complex(x, y) = x + iy: two reals -> complex
# =============================================================================================

complex_p = Primitive("complex")
complex_p.impl = lambda x, y: jax.lax.complex(*jnp.broadcast_arrays(x, y))


def _complex_aval(x, y):
    ax, ay = get_aval(x), get_aval(y)
    dtype = _complex_dtype(np.result_type(ax.dtype, ay.dtype))
    return ShapedArray(_broadcast_shapes(ax.shape, ay.shape), dtype)


def _complex_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = complex_(x, y)
    shape = get_aval(out).shape
    rdtype = _real_dtype(get_aval(out).dtype)
    tx = jnp.zeros(shape, rdtype) if tx is None else tx
    ty = jnp.zeros(shape, rdtype) if ty is None else ty
    return out, complex_(tx, ty)


def _complex_vjp(needs, ct, out, x, y):
    ct_x = unbroadcast(real(ct), get_aval(x).shape) if needs[0] else None
    ct_y = unbroadcast(neg(imag(ct)), get_aval(y).shape) if needs[1] else None
    return ct_x, ct_y


complex_p.abstract_eval = _complex_aval
complex_p.jvp = _complex_jvp
complex_p.vjp = _complex_vjp
complex_p.batch = broadcast_batcher(complex_p)


def complex_(x, y):
    return complex_p.bind(x, y)


__all__ = ["complex_", "complex_p", "conj", "conj_p", "imag", "imag_p", "real", "real_p"]
