"""Sorting and order statistics of `functrans.numpy`: `sort`, `argsort`, `take_along_axis`,
`searchsorted`, `nonzero`, `quantile`, `percentile`, `median`.

Only the permutation that sorts is a primitive (`argsort`, no derivative: its results are
integers). Sorted values, quantiles and medians are gathers of the input at positions read
from that permutation, so their derivatives flow through the gather as in JAX: each output's
cotangent goes back to the entry it was taken from, and among ties to the entry JAX's stable
sort puts there.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as _np

from .._src.core import Tracer, get_aval
from .._src.prims import indexing as ix
from .._src.prims import sorting as so


def _fnp():
    from functrans import numpy as fnp

    return fnp


def _array(a):
    return a if isinstance(a, (Tracer, jax.Array)) else _fnp().asarray(a)


def _no_kind_or_order(name, kind, order):
    if kind is not None:
        raise TypeError(
            f"`functrans.numpy.{name}` does not support `kind` (as in JAX); pass `stable=True` "
            "or `stable=False` to choose whether ties keep their order."
        )
    if order is not None:
        raise TypeError(f"`functrans.numpy.{name}` does not support `order` (as in JAX).")


def _sort_axis(a, axis):
    """`(a, axis)` with `axis=None` meaning the flattened array, the axis made non-negative."""
    fnp = _fnp()
    if axis is None:
        return fnp.ravel(a), 0
    (ax,) = fnp._axes(axis, fnp.ndim(a))
    return a, ax


# =============================================================================================
# sort, argsort, take_along_axis
# =============================================================================================


def sort(a, axis=-1, *, kind=None, order=None, stable=True, descending=False):
    """`a` sorted along `axis` (the flattened `a` for `axis=None`), as `jax.numpy.sort`.

    NaNs sort last. `descending=True` reverses the ascending order (so ties appear in
    reverse). The derivative sends each output's cotangent to the entry that landed there.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> x = fnp.asarray([3.0, 1.0, 2.0])
    >>> fnp.sort(x).tolist(), ft.grad(lambda x: fnp.sort(x)[0] * 10 + fnp.sort(x)[2])(x).tolist()
    ([1.0, 2.0, 3.0], [1.0, 10.0, 0.0])
    """
    _no_kind_or_order("sort", kind, order)
    a, ax = _sort_axis(_array(a), axis)
    out = so.sort([a], ax, is_stable=stable)[0]
    return _fnp().flip(out, ax) if descending else out


def argsort(a, axis=-1, *, kind=None, order=None, stable=True, descending=False, dtype=None):
    """The indices that sort `a` along `axis`, as `jax.numpy.argsort` (no derivative).

    With `stable=True`, tied entries keep their original order, also when `descending`.
    The indices have the default integer dtype unless `dtype` says otherwise.

    >>> import functrans.numpy as fnp
    >>> fnp.argsort(fnp.asarray([1.0, 2.0, 2.0, 0.0]), descending=True).tolist()
    [1, 2, 0, 3]
    """
    fnp = _fnp()
    _no_kind_or_order("argsort", kind, order)
    a, ax = _sort_axis(_array(a), axis)
    if descending and stable:
        # Sort the reversed array so that ties come out last-first, then reverse the result:
        # ties end up first-first, as a stable descending order should have them.
        n = fnp.shape(a)[ax]
        idx = fnp.subtract(n - 1, so.argsort([fnp.flip(a, ax)], ax, True))
    else:
        idx = so.argsort([a], ax, stable)
    idx = fnp.flip(idx, ax) if descending else idx
    return fnp.asarray(idx, fnp._default_int() if dtype is None else dtype)


def take_along_axis(arr, indices, axis=-1, mode=None, fill_value=None):
    """Entries of `arr` at `indices` along `axis`, as `jax.numpy.take_along_axis`.

    `indices` has as many axes as `arr`; the other axes pair up position by position and
    broadcast where one side has size 1. `axis=None` works on the flattened `arr` with 1-D
    `indices`. Negative indices count from the end. `mode=None` means `"fill"`: an index out
    of range gives `fill_value` (NaN for floating point, the smallest signed integer, the
    largest unsigned one, True), with zero derivative; `"clip"` clamps into range.

    >>> import functrans.numpy as fnp
    >>> x = fnp.asarray([[10.0, 30.0, 20.0], [5.0, 4.0, 6.0]])
    >>> fnp.take_along_axis(x, fnp.argsort(x, axis=1)[:, :1], axis=1).tolist()
    [[10.0], [4.0]]
    """
    fnp = _fnp()
    arr = _array(arr)
    traced = isinstance(indices, (Tracer, jax.core.Tracer))
    idx = indices if traced else _np.asarray(indices)
    idx_aval = get_aval(idx)
    if not jnp.issubdtype(idx_aval.dtype, jnp.integer):
        raise TypeError(
            "`functrans.numpy.take_along_axis` needs integer `indices`, got dtype "
            f"{idx_aval.dtype} instead; cast them with `.astype(int)`."
        )
    mode = "fill" if mode is None else mode
    if mode not in ("fill", "clip", "promise_in_bounds"):
        raise ValueError(
            f"`functrans.numpy.take_along_axis` got mode={mode!r}; use 'fill' (the default), "
            "'clip' or 'promise_in_bounds'."
        )
    if axis is None:
        if idx_aval.ndim != 1:
            raise ValueError(
                "`functrans.numpy.take_along_axis` with `axis=None` needs 1-D `indices`, got "
                f"shape {idx_aval.shape} instead."
            )
        arr, axis = fnp.ravel(arr), 0
    nd = fnp.ndim(arr)
    if idx_aval.ndim != nd:
        raise ValueError(
            "`functrans.numpy.take_along_axis`: `indices` and `arr` must have the same number "
            f"of dimensions, got {idx_aval.ndim} and {nd}."
        )
    (ax,) = fnp._axes(axis, nd)
    n = fnp.shape(arr)[ax]
    arr_shape = fnp.shape(arr)
    out_shape = jnp.broadcast_shapes(idx_aval.shape, arr_shape[:ax] + (1,) + arr_shape[ax + 1 :])
    dtype = get_aval(arr).dtype
    if n == 0:
        return jnp.zeros(out_shape, dtype)
    mod = fnp if traced else _np
    if mode != "promise_in_bounds":
        idx = mod.where(idx < 0, idx + n, idx)
    valid = (idx >= 0) & (idx < n)
    idx = mod.clip(idx, 0, n - 1)
    arr = fnp.broadcast_to(arr, out_shape[:ax] + (n,) + out_shape[ax + 1 :])
    out = so.take_along_axis(arr, fnp.broadcast_to(idx, out_shape), ax)
    if mode == "fill" and (traced or not _np.all(valid)):
        out = fnp.where(valid, out, fnp._take_fill(dtype, fill_value))
    return out


# =============================================================================================
# searchsorted, nonzero: integer results, no derivative
# =============================================================================================

_SEARCH_METHODS = ("scan", "scan_unrolled", "sort", "compare_all")


def searchsorted(a, v, side="left", sorter=None, *, method="scan"):
    """Where `v` would be inserted into the sorted 1-D `a` to keep it sorted.

    As `jax.numpy.searchsorted`: `side="left"` gives the first suitable position (the number
    of entries `< v`), `"right"` the last (the number `<= v`), comparing in sorting's total
    order (NaNs last); `sorter` are indices that sort `a`. The result is int32 (int64 past
    2**31 entries). Every `method` gives the same answer: `"compare_all"` compares `v` with
    all of `a`, the others run a binary search of `ceil(log2(len(a) + 1))` steps.

    >>> import functrans.numpy as fnp
    >>> a = fnp.asarray([1.0, 2.0, 2.0, 3.0])
    >>> fnp.searchsorted(a, 2.0).tolist(), fnp.searchsorted(a, 2.0, side="right").tolist()
    (1, 3)
    """
    fnp = _fnp()
    if side not in ("left", "right"):
        raise ValueError(
            f"`functrans.numpy.searchsorted` got side={side!r}; expected 'left' or 'right'."
        )
    if method not in _SEARCH_METHODS:
        raise ValueError(
            f"`functrans.numpy.searchsorted` got method={method!r}; expected one of "
            f"{', '.join(map(repr, _SEARCH_METHODS))}."
        )
    a, v = fnp._promote(_array(a), _array(v))
    if fnp.ndim(a) != 1:
        raise ValueError(
            f"`functrans.numpy.searchsorted` needs a 1-D `a`, got shape {fnp.shape(a)} instead."
        )
    if sorter is not None:
        a = ix.getitem(a, (sorter,))
    n = fnp.shape(a)[0]
    dtype = _np.dtype(_np.int32 if n <= _np.iinfo(_np.int32).max else _np.int64)
    vshape = fnp.shape(v)
    if n == 0:
        return jnp.zeros(vshape, dtype)
    if method == "compare_all":
        # left: how many entries are < v; right: how many are <= v
        below = (so.lt_to_p if side == "left" else so.le_to_p).bind(
            fnp.reshape(a, (n,) + (1,) * len(vshape)), v
        )
        return fnp.sum(below, axis=0, dtype=dtype)
    # Binary search for the first position whose entry is >= v (left) or > v (right).
    goes_left = so.le_to_p if side == "left" else so.lt_to_p
    low, high = jnp.zeros(vshape, dtype), jnp.full(vshape, n, dtype)
    for _ in range(math.ceil(math.log2(n + 1))):
        mid = fnp.add(low, fnp.floor_divide(fnp.subtract(high, low), 2))
        # Once low == high == n, mid == n reads a clamped entry; both branches then agree.
        left = goes_left.bind(v, ix.getitem(a, (mid,)))
        low, high = fnp.where(left, low, mid), fnp.where(left, mid, high)
    return high


_NONZERO_SIZE = (
    "`functrans.numpy.nonzero` was called on a value that is abstract inside a "
    "transformation (`ft.jit`, `make_graph`, `vmap` or `jax.jit`), and the number of nonzero "
    "entries decides the shape of its result. Pass a static `size` (as with "
    "`jnp.nonzero(x, size=...)`): the first `size` indices are returned, padded with "
    "`fill_value`."
)


def nonzero(a, *, size=None, fill_value=None):
    """The indices of the nonzero entries of `a`, one array per axis (`jax.numpy.nonzero`).

    Without `size` the result's length depends on the values, so `a` must be concrete. With
    `size`, the first `size` indices (in row-major order) are returned and the rest padded
    with `fill_value` (0 by default; a scalar, or a tuple with one per axis); this works
    inside every transformation.

    >>> import functrans.numpy as fnp
    >>> [i.tolist() for i in fnp.nonzero(fnp.asarray([[0, 3], [4, 0]]))]
    [[0, 1], [1, 0]]
    >>> [i.tolist() for i in fnp.nonzero(fnp.asarray([0, 5, 0, 7]), size=3, fill_value=-1)]
    [[1, 3, -1]]
    """
    fnp = _fnp()
    a = _array(a)
    shape = fnp.shape(a)
    if not shape:
        raise ValueError(
            "`functrans.numpy.nonzero` of a 0-d array is not allowed (as in JAX); use "
            "`fnp.atleast_1d(x)` or `x.reshape(1)` first."
        )
    mask = a if get_aval(a).dtype == _np.bool_ else fnp.not_equal(a, 0)
    index_dtype = fnp._default_int()
    if size is None:
        # A comparison carries no derivative, so inside an eager `grad` the mask is already a
        # concrete array; an eagerly recorded value can still give its concrete one.
        if isinstance(mask, (Tracer, jax.core.Tracer)):
            try:
                mask = mask.to_concrete("nonzero")
            except (TypeError, AttributeError):
                raise TypeError(_NONZERO_SIZE) from None
        return tuple(jnp.asarray(i, index_dtype) for i in _np.nonzero(_np.asarray(mask)))
    size = int(size)
    fills = fill_value if isinstance(fill_value, tuple) else (fill_value,) * len(shape)
    if len(fills) != len(shape) or any(_np.shape(f) != () for f in fills if f is not None):
        raise ValueError(
            f"`functrans.numpy.nonzero`: `fill_value` must be a scalar or a tuple of "
            f"{len(shape)} scalars, got {fill_value!r}."
        )
    flat = fnp.ravel(mask)
    total = math.prod(shape)
    # A stable argsort of "is zero" lists the nonzero positions first, in order.
    first = so.argsort([fnp.logical_not(flat)], 0, True)
    if size > total:
        first = fnp.concatenate([first, jnp.zeros(size - total, get_aval(first).dtype)])
    first = fnp.asarray(first[:size], index_dtype)
    padding = fnp.greater_equal(_np.arange(size, dtype=index_dtype), fnp.sum(flat))
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    return tuple(
        fnp.where(padding, 0 if f is None else f, fnp.remainder(fnp.floor_divide(first, s), d))
        for f, s, d in zip(fills, strides, shape)
    )


# =============================================================================================
# quantile, percentile, median
# =============================================================================================

_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def quantile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
    weights=None,
):  # fmt: skip
    """The `q`-th quantiles of `a` along `axis` (all axes by default), as `jax.numpy.quantile`.

    `q` is a scalar or a 1-D array in [0, 1]; its axis comes first in the result. The
    quantile sits at position `q * (n - 1)` of the sorted entries; `method` says what to do
    between two entries: `"linear"` interpolates, `"lower"`/`"higher"` take the one below or
    above, `"nearest"` the closer one (the lower one at exactly half way, as JAX), and
    `"midpoint"` their mean. A slice holding a NaN has a NaN quantile. Derivatives flow to
    the entries used (by their interpolation weights) and, for `"linear"`, to `q` as well.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> x = fnp.asarray([4.0, 1.0, 3.0, 2.0])
    >>> fnp.quantile(x, fnp.asarray([0.25, 0.5])).tolist()
    [1.75, 2.5]
    >>> ft.grad(lambda x: fnp.quantile(x, 0.25))(x).tolist()  # 1 + 0.75 * (2 - 1)
    [0.0, 0.25, 0.0, 0.75]
    """
    fnp = _fnp()
    if out is not None or overwrite_input:
        raise ValueError(
            "`functrans.numpy.quantile` does not support `out` or `overwrite_input=True` (as "
            "in JAX); use the returned array."
        )
    if weights is not None or method == "inverted_cdf":
        raise NotImplementedError(
            "`functrans.numpy.quantile` does not support `weights` or method='inverted_cdf' "
            "yet; sort the entries with `fnp.argsort` and accumulate the weights with "
            "`fnp.cumsum` instead."
        )
    if method not in _QUANTILE_METHODS:
        raise ValueError(
            f"`functrans.numpy.quantile` got method={method!r}; expected one of "
            f"{', '.join(map(repr, _QUANTILE_METHODS))}."
        )
    (a,) = fnp._promote(_array(a), to_inexact=True)
    dtype = get_aval(a).dtype
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError("`functrans.numpy.quantile` does not support complex input (as JAX).")
    (q,) = fnp._promote(_array(q), to_inexact=True)
    q_shape = fnp.shape(q)
    if len(q_shape) > 1:
        raise ValueError(f"`q` must be a scalar or 1-D, got shape {q_shape} instead.")
    shape = fnp.shape(a)
    axes = fnp._axes(axis, len(shape))
    kept = [i for i in range(len(shape)) if i not in axes]
    n = math.prod(shape[i] for i in axes)
    # The reduced axes moved last and merged into one of length n: rows shaped (*rest, n).
    rest = tuple(shape[i] for i in kept)
    x = fnp.reshape(fnp.transpose(a, kept + list(axes)), rest + (n,))
    x = fnp.where(fnp.any(fnp.isnan(x), axis=-1, keepdims=True), math.nan, x)
    order = so.argsort([x], -1, True)
    position = fnp.multiply(fnp.reshape(q, (-1,)), float(n - 1))  # (k,), in q's dtype
    low, high = fnp.floor(position), fnp.ceil(position)
    high_weight = fnp.subtract(position, low)
    low_weight = fnp.subtract(1.0, high_weight)

    def entries(pos):  # the entries of each row at sorted positions `pos`: (*rest, k)
        pos = fnp.asarray(fnp.clip(pos, 0, n - 1), _np.int32)
        return so.take_along_axis(x, ix.getitem(order, (..., pos)), -1)

    lo = entries(low) if method in ("linear", "lower", "midpoint") else None
    hi = entries(high) if method in ("linear", "higher", "midpoint") else None
    if method == "linear":
        q_dtype = get_aval(q).dtype
        lo, hi = fnp.asarray(lo, q_dtype), fnp.asarray(hi, q_dtype)
        res = fnp.add(fnp.multiply(lo, low_weight), fnp.multiply(hi, high_weight))
    elif method == "lower":
        res = lo
    elif method == "higher":
        res = hi
    elif method == "nearest":
        # the lower entry up to half way (inclusive), as JAX does: pick a position, gather once
        res = entries(fnp.where(fnp.less_equal(high_weight, 0.5), low, high))
    else:
        res = fnp.multiply(fnp.add(lo, hi), 0.5)
    res = fnp.moveaxis(fnp.asarray(res, dtype), -1, 0)
    keep_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return fnp.reshape(res, q_shape + (keep_shape if keepdims else rest))


def percentile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
    weights=None,
):  # fmt: skip
    """The `q`-th percentiles (`q` in [0, 100]): `quantile(a, q / 100, ...)`, as JAX.

    >>> import functrans.numpy as fnp
    >>> fnp.percentile(fnp.arange(5.0), fnp.asarray([25.0, 62.5])).tolist()
    [1.0, 2.5]
    """
    fnp = _fnp()
    (q,) = fnp._promote(_array(q), to_inexact=True)
    return quantile(a, fnp.divide(q, 100), axis, out, overwrite_input, method, keepdims,
                    weights=weights)  # fmt: skip


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The median along `axis`, as `jax.numpy.median`: `quantile(a, 0.5, method="midpoint")`.

    For an even count it is the mean of the two middle entries, each with derivative 1/2.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> ft.grad(fnp.median)(fnp.asarray([3.0, 1.0, 4.0, 1.5])).tolist()
    [0.5, 0.0, 0.0, 0.5]
    """
    return quantile(a, 0.5, axis, out, overwrite_input, "midpoint", keepdims)
