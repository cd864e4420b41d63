"""Indexing: `x[idx]`, `x.at[idx].set(y)` and `x.at[idx].add(y)`.

One static *indexer* describes a NumPy index expression: each entry is `("i", int)`,
`("s", start, stop, step)`, `("n",)` for `None`, `("e",)` for `...`, or `("a", k)` for the
k-th index-array operand. Three primitives share it:

  gather(x, *arrays)          = x[idx]
  scatter_add(x, y, *arrays)  = x.at[idx].add(y)     (the transpose of gather)
  scatter(x, y, *arrays)      = x.at[idx].set(y)

Each lowers to `jax.numpy` indexing, so shapes, negative indices and the placement of
advanced-index axes follow NumPy exactly, and each one's derivative is one of the three.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, Tracer, get_aval, is_inexact, is_python_scalar
from .elementwise import broadcast_to, shape_of, unbroadcast


def _rebuild(indexer, arrays):
    out = []
    for entry in indexer:
        kind = entry[0]
        if kind == "i":
            out.append(entry[1])
        elif kind == "s":
            out.append(slice(*entry[1:]))
        elif kind == "n":
            out.append(None)
        elif kind == "e":
            out.append(Ellipsis)
        else:
            out.append(arrays[entry[1]])
    return tuple(out)


@functools.lru_cache(maxsize=2048)
def _indexed_aval(x_aval, array_avals, indexer):
    def f(x, *arrays):
        return x[_rebuild(indexer, arrays)]

    structs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (x_aval, *array_avals)]
    out = jax.eval_shape(f, *structs)
    return ShapedArray(out.shape, x_aval.dtype, x_aval.weak_type)


def _indexed_shape(x, arrays, indexer):
    return _indexed_aval(get_aval(x), tuple(get_aval(a) for a in arrays), indexer)


def _marker_size(x_aval, array_avals):
    """A size equal to no axis of the operands, used to find an axis in an abstract result."""
    dims = [*x_aval.shape, *(d for a in array_avals for d in a.shape)]
    return max(dims, default=1) + 2


@functools.lru_cache(maxsize=2048)
def _batch_position(x_aval, array_avals, indexer):
    """Where the leading batch axis of `x` lands in `x[(:, *indexer)]`.

    NumPy places advanced-index axes either in place or in front depending on whether they
    are adjacent, so the answer is read off an abstract evaluation with a distinct size.
    """
    u = _marker_size(x_aval, array_avals)
    shaped = ShapedArray((u, *x_aval.shape), x_aval.dtype)
    out = _indexed_aval(shaped, array_avals, (("s", None, None, None), *indexer))
    return out.shape.index(u)


@functools.lru_cache(maxsize=2048)
def _advanced_position(x_aval, array_avals, indexer):
    """Where the advanced-index axes of `x[indexer]` start (it has index arrays)."""
    u = _marker_size(x_aval, array_avals)
    rank = max(a.ndim for a in array_avals)
    first = array_avals[0]
    marked = ShapedArray((u,) + (1,) * (rank - first.ndim) + first.shape, first.dtype)
    out = _indexed_aval(x_aval, (marked, *array_avals[1:]), indexer)
    return out.shape.index(u)


def _per_example_aval(v, d):
    aval = get_aval(v)
    if d is None:
        return aval
    return ShapedArray(aval.shape[:d] + aval.shape[d + 1 :], aval.dtype, aval.weak_type)


def _expand_index_arrays(arrays, ads, a_avals, size):
    """Batched index arrays with the batch axis first, all of one rank so they broadcast."""
    from .structural import moveaxis, reshape

    rank = max(a.ndim for a in a_avals)
    new = []
    for a, d, av in zip(arrays, ads, a_avals):
        if d is not None:
            a = reshape(moveaxis(a, d, 0), (size,) + (1,) * (rank - av.ndim) + av.shape)
        new.append(a)
    return new, rank


def _batched_index(x, xd, arrays, ads, indexer, size):
    """Rewrite `x[indexer]` with batched operands as one indexing of a batched `x`.

    Returns `(x, arrays, indexer, layout)`, where `x` has its batch axis first, and `layout`
    says where the result of the new indexing keeps its batch axis:
      `("at", q)`: at axis q, all other axes as in one example's result;
      `("front", p, r)`: first, followed by the r advanced-index axes and then the remaining
      axes, where one example's result would hold its advanced axes at position p.
    """
    from .structural import batch_to_front

    x_aval = _per_example_aval(x, xd)
    a_avals = tuple(_per_example_aval(a, d) for a, d in zip(arrays, ads))
    x = batch_to_front(x, xd, size)
    if all(d is None for d in ads):
        # Only x is batched: a leading full slice keeps its examples apart.
        q = _batch_position(x_aval, a_avals, indexer)
        return x, list(arrays), (("s", None, None, None), *indexer), ("at", q)
    # Batched index arrays: the batch axis of x is indexed by an `arange` that broadcasts
    # against them, which puts the whole advanced block (batch first) in front.
    new, rank = _expand_index_arrays(arrays, ads, a_avals, size)
    iota = jnp.arange(size).reshape((size,) + (1,) * rank)
    p = _advanced_position(x_aval, a_avals, indexer)
    return x, [*new, iota], (("a", len(new)), *indexer), ("front", p, rank)


def _front_to_example_layout(p, r, nd):
    """Permutation from `(batch, advanced axes (r), rest)` to `(batch, one example's axes)`."""
    return [0, *range(1 + r, 1 + r + p), *range(1, 1 + r), *range(1 + r + p, nd)]


def _zeros_like(x):
    aval = get_aval(x)
    return jnp.zeros(aval.shape, aval.dtype)


# =============================================================================================
# gather
# =============================================================================================

gather_p = Primitive("gather")
# `jnp.asarray`: a NumPy operand indexed by traced index arrays must index as a JAX array
gather_p.impl = lambda x, *arrays, indexer: jnp.asarray(x)[_rebuild(indexer, arrays)]
gather_p.abstract_eval = lambda x, *arrays, indexer: _indexed_shape(x, arrays, indexer)
gather_p.jvp = lambda primals, tangents, indexer: (
    gather(primals[0], primals[1:], indexer),
    gather(tangents[0], primals[1:], indexer),
)
gather_p.vjp = lambda needs, ct, out, x, *arrays, indexer: (
    (scatter_add(_zeros_like(x), ct, arrays, indexer),) + (None,) * len(arrays)
)


def _gather_batch(args, dims, indexer):
    from .structural import batch_size, transpose

    (x, *arrays), (xd, *ads) = args, dims
    size = batch_size(args, dims)
    if xd is None:
        # A shared x indexed by batched index arrays: the batch is one more axis of the
        # broadcast advanced index, and lands where one example's advanced axes go.
        a_avals = tuple(_per_example_aval(a, d) for a, d in zip(arrays, ads))
        new, _ = _expand_index_arrays(arrays, ads, a_avals, size)
        return gather(x, new, indexer), _advanced_position(get_aval(x), a_avals, indexer)
    x, arrays, indexer, layout = _batched_index(x, xd, arrays, ads, indexer, size)
    out = gather(x, arrays, indexer)
    if layout[0] == "at":
        return out, layout[1]
    _, p, r = layout
    return transpose(out, _front_to_example_layout(p, r, len(shape_of(out)))), 0


gather_p.batch = _gather_batch


def gather(x, arrays, indexer):
    return gather_p.bind(x, *arrays, indexer=indexer)


# =============================================================================================
# scatter_add
# =============================================================================================


def _scatter_batcher(prim):
    """Batch rule shared by `scatter_add` and `scatter`: `x.at[indexer].add/set(y)`.

    The result is batched whenever any operand is, so `x` gets the batch axis first; `y` is
    laid out like the batched indexing of `x` (see `_batched_index`).
    """

    def rule(args, dims, indexer):
        from .structural import batch_size, moveaxis, reshape, transpose

        (x, y, *arrays), (xd, yd, *ads) = args, dims
        size = batch_size(args, dims)
        x_aval = _per_example_aval(x, xd)
        a_avals = tuple(_per_example_aval(a, d) for a, d in zip(arrays, ads))
        target = _indexed_aval(x_aval, a_avals, indexer).shape  # one example's x[indexer]
        x, arrays, indexer, layout = _batched_index(x, xd, arrays, ads, indexer, size)
        if yd is None and (is_python_scalar(y) or not shape_of(y)):
            pass  # a scalar broadcasts against any layout
        elif yd is None and layout[0] == "at":
            q = layout[1]
            y = reshape(broadcast_to(y, target), (*target[:q], 1, *target[q:]))
        else:
            if yd is None:
                per, y = shape_of(y), reshape(y, (1, *shape_of(y)))
            else:
                per, y = _per_example_aval(y, yd).shape, moveaxis(y, yd, 0)
            y = reshape(y, (shape_of(y)[0],) + (1,) * (len(target) - len(per)) + per)
            y = broadcast_to(y, (size, *target))
            if layout[0] == "at":
                y = moveaxis(y, 0, layout[1])
            else:
                _, p, r = layout
                perm = [0, *range(1 + p, 1 + p + r), *range(1, 1 + p)]
                y = transpose(y, perm + list(range(1 + p + r, 1 + len(target))))
        return prim.bind(x, y, *arrays, indexer=indexer), 0

    return rule


scatter_add_p = Primitive("scatter_add")
scatter_add_p.impl = lambda x, y, *arrays, indexer: (
    jnp.asarray(x).at[_rebuild(indexer, arrays)].add(y)
)
scatter_add_p.abstract_eval = lambda x, y, *arrays, indexer: get_aval(x)


def _scatter_add_jvp(primals, tangents, indexer):
    x, y, *arrays = primals
    tx, ty = tangents[:2]
    out = scatter_add(x, y, arrays, indexer)
    if ty is None:
        return out, tx
    return out, scatter_add(_zeros_like(x) if tx is None else tx, ty, arrays, indexer)


def _scatter_add_vjp(needs, ct, out, x, y, *arrays, indexer):
    ct_y = unbroadcast(gather(ct, arrays, indexer), shape_of(y)) if needs[1] else None
    return (ct, ct_y) + (None,) * len(arrays)


scatter_add_p.jvp = _scatter_add_jvp
scatter_add_p.vjp = _scatter_add_vjp
scatter_add_p.batch = _scatter_batcher(scatter_add_p)


def scatter_add(x, y, arrays, indexer):
    return scatter_add_p.bind(x, y, *arrays, indexer=indexer)


# =============================================================================================
# scatter (set)
# =============================================================================================

scatter_p = Primitive("scatter")
scatter_p.impl = lambda x, y, *arrays, indexer: jnp.asarray(x).at[_rebuild(indexer, arrays)].set(y)
scatter_p.abstract_eval = lambda x, y, *arrays, indexer: get_aval(x)


def _scatter_jvp(primals, tangents, indexer):
    x, y, *arrays = primals
    tx, ty = tangents[:2]
    out = scatter(x, y, arrays, indexer)
    tx = _zeros_like(x) if tx is None else tx
    return out, scatter(tx, 0.0 if ty is None else ty, arrays, indexer)


def _scatter_vjp(needs, ct, out, x, y, *arrays, indexer):
    ct_x = scatter(ct, 0.0, arrays, indexer) if needs[0] else None
    ct_y = unbroadcast(gather(ct, arrays, indexer), shape_of(y)) if needs[1] else None
    return (ct_x, ct_y) + (None,) * len(arrays)


scatter_p.jvp = _scatter_jvp
scatter_p.vjp = _scatter_vjp
scatter_p.batch = _scatter_batcher(scatter_p)


def scatter(x, y, arrays, indexer):
    return scatter_p.bind(x, y, *arrays, indexer=indexer)


# =============================================================================================
# From a Python index expression to an indexer
# =============================================================================================


def _static_int(v):
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    return None


def _bool_mask_to_arrays(mask):
    if isinstance(mask, Tracer) or isinstance(mask, jax.core.Tracer):
        raise IndexError(
            "A boolean mask used as an index must be concrete, because the shape of the result "
            "depends on how many entries are True; this mask is a traced value. Use "
            "`functrans.numpy.where(mask, x, 0)` to keep the shape static instead."
        )
    return [jnp.asarray(a) for a in np.nonzero(np.asarray(mask))]


def parse_index(idx):
    """Split a Python index into a static indexer and a list of index-array operands."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    indexer, arrays = [], []
    for item in idx:
        i = _static_int(item)
        if i is not None:
            indexer.append(("i", i))
        elif item is None:
            indexer.append(("n",))
        elif item is Ellipsis:
            indexer.append(("e",))
        elif isinstance(item, slice):
            parts = [item.start, item.stop, item.step]
            for v in parts:
                if v is not None and _static_int(v) is None:
                    raise IndexError(
                        f"Slice bounds must be static Python integers, got {item!r}. Use "
                        "`ft.lax.dynamic_slice(x, starts, sizes)` for traced starts (the "
                        "sizes stay static)."
                    )
            indexer.append(("s", *[None if v is None else int(v) for v in parts]))
        else:
            if isinstance(item, (list, tuple)):
                item = np.asarray(item)
            aval = get_aval(item)
            if aval.dtype == np.bool_:
                for a in _bool_mask_to_arrays(item):
                    indexer.append(("a", len(arrays)))
                    arrays.append(a)
            elif jnp.issubdtype(aval.dtype, jnp.integer):
                indexer.append(("a", len(arrays)))
                arrays.append(item)
            else:
                raise IndexError(
                    f"Indices must be integers, slices, `None`, `...`, or integer or boolean "
                    f"arrays; got a value of dtype {aval.dtype}. Convert it with `.astype(int)`."
                )
    return tuple(indexer), arrays


def _clamp_static_ints(shape, indexer):
    """Clamp out-of-bounds Python int indices into range, as JAX does for `x[5]`.

    The lowering clamps by itself, but the transpose (`scatter_add`) drops out-of-bounds
    updates, so `x[5]` gave the last entry with a zero gradient where JAX's gradient is one
    at the last entry. (Index *arrays* keep JAX's own behaviour: clamped values, dropped
    cotangents.)
    """
    consuming = sum(1 for e in indexer if e[0] in "isa")
    if consuming > len(shape):
        return indexer  # too many indices: the lowering raises the error
    out, axis = [], 0
    for e in indexer:
        if e[0] == "e":
            axis += len(shape) - consuming
        elif e[0] in "isa":
            d = shape[axis]
            axis += 1
            if e[0] == "i" and d:
                e = ("i", min(max(e[1], -d), d - 1))
        out.append(e)
    return tuple(out)


def getitem(x, idx):
    indexer, arrays = parse_index(idx)
    indexer = _clamp_static_ints(shape_of(x), indexer)
    if all(e == ("s", None, None, None) or e == ("e",) for e in indexer):
        return x
    return gather(x, arrays, indexer)


class _IndexUpdateRef:
    def __init__(self, x, idx):
        self.x, self.idx = x, idx

    def get(self):
        return getitem(self.x, self.idx)

    def set(self, y):
        from functrans import numpy as fnp

        indexer, arrays = parse_index(self.idx)
        y = fnp.asarray(y, dtype=get_aval(self.x).dtype)
        return scatter(self.x, y, arrays, indexer)

    def add(self, y):
        from functrans import numpy as fnp

        indexer, arrays = parse_index(self.idx)
        y = fnp.asarray(y, dtype=get_aval(self.x).dtype)
        return scatter_add(self.x, y, arrays, indexer)

    def multiply(self, y):
        return self.set(self.get() * y)

    def subtract(self, y):
        return self.add(-y)


class _IndexUpdateHelper:
    """`x.at[idx]`: functional index updates, as in `jax.numpy`."""

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return _IndexUpdateRef(self.x, idx)


# =============================================================================================
# Static slices used by other rules
# =============================================================================================


def static_slice(x, starts, limits, strides=None):
    strides = strides or [1] * len(starts)
    indexer = tuple(("s", int(a), int(b), int(s)) for a, b, s in zip(starts, limits, strides))
    if all(a == 0 and b == d and s == 1 for (_, a, b, s), d in zip(indexer, shape_of(x))):
        return x
    return gather(x, [], indexer)


def slice_in_dim(x, start, limit, axis):
    shape = shape_of(x)
    starts = [0] * len(shape)
    limits = list(shape)
    starts[axis], limits[axis] = start, limit
    return static_slice(x, starts, limits)


def is_differentiable_value(x):
    return is_inexact(get_aval(x).dtype)
