"""Reductions over static axes: sum, max, min, prod, argmax, argmin, cumulative sum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval, is_python_scalar
from .elementwise import (
    broadcast_to,
    convert_element_type,
    div,
    dtype_of,
    eq,
    mul,
    ne_p,
    select,
    shape_of,
    stop_gradient,
)
from .structural import reshape, transpose


def _reduced_shape(shape, axes):
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_aval(x, axes):
    aval = get_aval(x)
    return ShapedArray(_reduced_shape(aval.shape, axes), aval.dtype, aval.weak_type)


def _reduce_batcher(prim):
    """Batch rule of a reduction over `axes`: shift the axes around the batch axis."""

    def rule(args, dims, axes):
        (x,), (d,) = args, dims
        axes = tuple(a + (a >= d) for a in axes)
        return prim.bind(x, axes=axes), d - sum(a < d for a in axes)

    return rule


def expand_back(y, shape, axes):
    """Broadcast a reduced value `y` back to the input `shape` (the VJP of a sum)."""
    if is_python_scalar(y):
        return broadcast_to(y, shape)
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return broadcast_to(reshape(y, kept), shape)


# =============================================================================================
# reduce_sum
# =============================================================================================

reduce_sum_p = Primitive("reduce_sum")
# `promote_integers=False`: the result keeps the operand's dtype, as `_reduce_aval` says
# (`jnp.sum` would widen int32 to int64; `functrans.numpy.sum` promotes before binding).
reduce_sum_p.impl = lambda x, axes: jnp.sum(x, axis=axes, promote_integers=False)
reduce_sum_p.abstract_eval = _reduce_aval
reduce_sum_p.jvp = lambda primals, tangents, axes: (
    reduce_sum(primals[0], axes),
    reduce_sum(tangents[0], axes),
)
reduce_sum_p.vjp = lambda needs, ct, out, x, axes: (expand_back(ct, shape_of(x), axes),)
reduce_sum_p.batch = _reduce_batcher(reduce_sum_p)


def reduce_sum(x, axes):
    axes = tuple(sorted(int(a) for a in axes))
    if not axes:
        return x
    return reduce_sum_p.bind(x, axes=axes)


# =============================================================================================
# reduce_max / reduce_min: the derivative is shared equally among tied maxima, as in JAX
# =============================================================================================


def _to_rows(x, axes):
    """`x` with the `axes` moved last and merged: `(rows, perm)`, rows shaped `(*kept, n)`."""
    shape = shape_of(x)
    kept = [i for i in range(len(shape)) if i not in axes]
    perm = kept + list(axes)
    n = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    return reshape(transpose(x, perm), (*(shape[i] for i in kept), n)), perm


def _from_rows(y, shape, perm):
    """The inverse of `_to_rows` for an array `y` shaped like its rows."""
    y = reshape(y, [shape[i] for i in perm])
    return transpose(y, tuple(np.argsort(perm)))


def extremum_weights(prim, x, axes):
    """The derivative of `prim` (reduce_max or reduce_min) over `axes` in each entry of `x`.

    1 / (number of ties) where an entry reaches the extremum, 0 elsewhere (NaN where the
    extremum is NaN), as in JAX. XLA may compute `x` once inside one fusion and again,
    rounded differently, inside another (it contracts a multiply-add into one rounding in
    some fusions and not in others), so comparing the entries with the reduction's output
    can find no entry equal to it, and the derivative would be silently 0. Here nothing
    compares values made by different fusions: an `argmax` (`argmin`) reduction picks the
    first extremum, and the entries are compared with that one through a single gather that
    yields both, `(x[0], ..., x[n-1], x[first])`; wherever XLA computes it, it computes all
    with the same code, so exact ties stay ties and the first extremum always matches itself.
    """
    from .indexing import getitem
    from .structural import concatenate

    x = stop_gradient(x)  # the weights are locally constant: no outer derivative of them
    shape = shape_of(x)
    if 0 in shape:  # no entries (the reduction itself reports an empty axis)
        return broadcast_to(np.zeros((), dtype_of(x)), shape)
    flat, perm = _to_rows(x, axes)
    *kept_shape, n = shape_of(flat)
    k = len(kept_shape)
    index_dtype = jax.dtypes.canonicalize_dtype(np.int64)
    arg = argmax_p if prim is reduce_max_p else argmin_p
    first = reshape(arg.bind(flat, axis=k, index_dtype=index_dtype), (*kept_shape, 1))
    # both[..., :n] = x[..., :], both[..., n] = x[..., first]: one gather
    entry = np.arange(n, dtype=index_dtype)
    where = concatenate([broadcast_to(entry, (*kept_shape, n)), first], k)
    rows = tuple(
        np.arange(d, dtype=index_dtype).reshape((-1,) + (1,) * (k - i))
        for i, d in enumerate(kept_shape)
    )
    both = getitem(flat, (*rows, where))
    top = getitem(both, (..., slice(n, n + 1)))
    hit = convert_element_type(eq(getitem(both, (..., slice(0, n))), top), dtype_of(x))
    w = div(hit, expand_back(reduce_sum(hit, (k,)), (*kept_shape, n), (k,)))
    # NaN where the extremum is NaN (no entry equals it: 0/0, which XLA may fold to 0)
    w = select(ne_p.bind(top, top), np.nan, w)
    return _from_rows(w, shape, perm)


def _extremum(name, impl):
    p = Primitive(name)
    p.impl = impl
    p.abstract_eval = _reduce_aval

    def jvp(primals, tangents, axes):
        (x,), (t,) = primals, tangents
        out = p.bind(x, axes=axes)
        return out, reduce_sum(mul(t, extremum_weights(p, x, axes)), axes)

    def vjp(needs, ct, out, x, axes):
        return (mul(expand_back(ct, shape_of(x), axes), extremum_weights(p, x, axes)),)

    p.jvp, p.vjp = jvp, vjp
    p.batch = _reduce_batcher(p)
    return p


reduce_max_p = _extremum("reduce_max", lambda x, axes: jnp.max(x, axis=axes))
reduce_min_p = _extremum("reduce_min", lambda x, axes: jnp.min(x, axis=axes))


def reduce_max(x, axes):
    return reduce_max_p.bind(x, axes=tuple(sorted(axes)))


def reduce_min(x, axes):
    return reduce_min_p.bind(x, axes=tuple(sorted(axes)))


# =============================================================================================
# reduce_prod: d prod / d x_i is the product of the other entries, computed without division
# so that it stays right (and differentiable) where entries are zero.
# =============================================================================================

reduce_prod_p = Primitive("reduce_prod")
reduce_prod_p.impl = lambda x, axes: jnp.prod(x, axis=axes, promote_integers=False)
reduce_prod_p.abstract_eval = _reduce_aval


def _prod_of_others(x, axes):
    """An array shaped like `x` whose entry i is the product over `axes` of all entries but i."""
    flat, perm = _to_rows(x, axes)
    *lead, n = shape_of(flat)
    eye = np.eye(n, dtype=bool)
    # row i of the (n, n) block is x with entry i replaced by 1
    block = select(eye, 1.0, broadcast_to(reshape(flat, (*lead, 1, n)), (*lead, n, n)))
    return _from_rows(reduce_prod(block, (len(lead) + 1,)), shape_of(x), perm)


def _reduce_prod_jvp(primals, tangents, axes):
    (x,), (t,) = primals, tangents
    return reduce_prod(x, axes), reduce_sum(mul(t, _prod_of_others(x, axes)), axes)


def _reduce_prod_vjp(needs, ct, out, x, axes):
    return (mul(expand_back(ct, shape_of(x), axes), _prod_of_others(x, axes)),)


reduce_prod_p.jvp = _reduce_prod_jvp
reduce_prod_p.vjp = _reduce_prod_vjp
reduce_prod_p.batch = _reduce_batcher(reduce_prod_p)


def reduce_prod(x, axes):
    axes = tuple(sorted(int(a) for a in axes))
    if not axes:
        return x
    return reduce_prod_p.bind(x, axes=axes)


# =============================================================================================
# argmax / argmin (integer results: no derivative)
# =============================================================================================


def _arg_aval(x, axis, index_dtype):
    aval = get_aval(x)
    return ShapedArray(_reduced_shape(aval.shape, (axis,)), index_dtype)


argmax_p = Primitive("argmax", differentiable=False)
argmax_p.impl = lambda x, axis, index_dtype: jnp.argmax(x, axis=axis).astype(index_dtype)
argmax_p.abstract_eval = _arg_aval
argmin_p = Primitive("argmin", differentiable=False)
argmin_p.impl = lambda x, axis, index_dtype: jnp.argmin(x, axis=axis).astype(index_dtype)
argmin_p.abstract_eval = _arg_aval


def _arg_batcher(prim):
    def rule(args, dims, axis, index_dtype):
        (x,), (d,) = args, dims
        axis = axis + (axis >= d)
        return prim.bind(x, axis=axis, index_dtype=index_dtype), d - (axis < d)

    return rule


argmax_p.batch = _arg_batcher(argmax_p)
argmin_p.batch = _arg_batcher(argmin_p)

# =============================================================================================
# cumsum
# =============================================================================================

cumsum_p = Primitive("cumsum")


def _cumsum_impl(x, axis, reverse):
    if reverse:
        return jnp.flip(jnp.cumsum(jnp.flip(x, axis), axis=axis), axis)
    return jnp.cumsum(x, axis=axis)


cumsum_p.impl = _cumsum_impl
cumsum_p.abstract_eval = lambda x, axis, reverse: get_aval(x)
cumsum_p.jvp = lambda primals, tangents, axis, reverse: (
    cumsum(primals[0], axis, reverse),
    cumsum(tangents[0], axis, reverse),
)
cumsum_p.vjp = lambda needs, ct, out, x, axis, reverse: (cumsum(ct, axis, not reverse),)
cumsum_p.batch = lambda args, dims, axis, reverse: (
    cumsum(args[0], axis + (axis >= dims[0]), reverse),
    dims[0],
)


def cumsum(x, axis, reverse=False):
    return cumsum_p.bind(x, axis=int(axis), reverse=bool(reverse))
