"""Sorting: the permutation that sorts (and the indices of the k largest) as primitives.

Only the *indices* are primitives, and they carry no derivative (they are integers). Sorted
values are then a gather of the operands by those indices, so derivatives of `sort`,
`top_k`, `median` or `quantile` flow through the gather: each output's cotangent goes back
to the input it came from, as in JAX (for ties, to the element JAX's stable sort picks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import _compare
from .structural import batch_size, batch_to_front

# =============================================================================================
# argsort(*keys, dimension, is_stable): lexicographic on keys, NaNs last (JAX's order)
# =============================================================================================

argsort_p = Primitive("argsort", differentiable=False)


def _argsort_impl(*keys, dimension, is_stable):
    shape = jnp.shape(keys[0])
    iota = jax.lax.broadcasted_iota(np.int32, shape, dimension)
    return jax.lax.sort((*keys, iota), dimension=dimension, is_stable=is_stable,
                        num_keys=len(keys))[-1]  # fmt: skip


def _argsort_aval(*keys, dimension, is_stable):
    return ShapedArray(get_aval(keys[0]).shape, np.int32)


def _argsort_batch(args, dims, *, dimension, is_stable):
    size = batch_size(args, dims)
    keys = [batch_to_front(k, d, size) for k, d in zip(args, dims)]
    return argsort_p.bind(*keys, dimension=dimension + 1, is_stable=is_stable), 0


argsort_p.impl = _argsort_impl
argsort_p.abstract_eval = _argsort_aval
argsort_p.batch = _argsort_batch


def argsort(keys, dimension, is_stable=True):
    """Indices that sort `keys` (a list, compared lexicographically) along `dimension`."""
    ndim = get_aval(keys[0]).ndim
    return argsort_p.bind(*keys, dimension=dimension % ndim, is_stable=bool(is_stable))


# =============================================================================================
# top_k_indices(x, k): indices of the k largest entries along the last axis
# =============================================================================================

top_k_indices_p = Primitive("top_k_indices", differentiable=False)
top_k_indices_p.impl = lambda x, *, k: jax.lax.top_k(x, k)[1]


def _top_k_aval(x, *, k):
    aval = get_aval(x)
    return ShapedArray((*aval.shape[:-1], k), np.int32)


def _top_k_batch(args, dims, *, k):
    (x,), (d,) = args, dims
    return top_k_indices_p.bind(batch_to_front(x, d, None), k=k), 0


top_k_indices_p.abstract_eval = _top_k_aval
top_k_indices_p.batch = _top_k_batch


# =============================================================================================
# Comparisons in the total order of sorting (-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN)
# =============================================================================================


def _total_order_key(x):
    """An integer with the same order as `x` in the total order (floats by their bits)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x
    ints = jnp.dtype(f"int{8 * x.dtype.itemsize}")
    bits = jax.lax.bitcast_convert_type(x, ints)
    # Negative floats order opposite to their bits read as integers: flip the magnitude.
    return jnp.where(bits < 0, bits ^ jnp.iinfo(ints).max, bits)


lt_to_p = _compare("lt_to", lambda x, y: _total_order_key(x) < _total_order_key(y))
le_to_p = _compare("le_to", lambda x, y: _total_order_key(x) <= _total_order_key(y))


# =============================================================================================
# Gathering values by indices
# =============================================================================================


def take_along_axis(x, indices, axis):
    """`x` indexed by `indices` along `axis` (other axes matched position by position)."""
    from .indexing import getitem

    shape = get_aval(indices).shape
    ndim = len(shape)
    axis = axis % ndim
    index = tuple(
        indices if i == axis else np.arange(n).reshape((-1,) + (1,) * (ndim - i - 1))
        for i, n in enumerate(shape)
    )
    return getitem(x, index)


def sort(operands, dimension, is_stable=True, num_keys=1):
    """`jax.lax.sort` of several operands: sorted by the first `num_keys`, moved together."""
    perm = argsort(list(operands[:num_keys]), dimension, is_stable)
    return [take_along_axis(op, perm, dimension) for op in operands]


def top_k(x, k):
    """`(values, indices)` of the `k` largest entries of `x` along its last axis."""
    idx = top_k_indices_p.bind(x, k=int(k))
    return take_along_axis(x, idx, -1), idx


__all__ = [
    "argsort", "argsort_p", "le_to_p", "lt_to_p", "sort", "take_along_axis", "top_k",
    "top_k_indices_p",
]  # fmt: skip
