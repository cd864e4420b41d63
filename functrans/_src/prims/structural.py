"""Primitives that move data without arithmetic: reshape, transpose, concatenate, pad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import add_any, shape_of

# =============================================================================================
# reshape
# =============================================================================================

reshape_p = Primitive("reshape")
reshape_p.impl = lambda x, new_sizes: jnp.reshape(x, new_sizes)


def _reshape_aval(x, new_sizes):
    aval = get_aval(x)
    if int(np.prod(new_sizes, dtype=np.int64)) != aval.size:
        raise ValueError(
            f"Cannot reshape an array of shape {aval.shape} ({aval.size} elements) into shape "
            f"{tuple(new_sizes)}: the number of elements must stay the same."
        )
    return ShapedArray(new_sizes, aval.dtype, aval.weak_type)


reshape_p.abstract_eval = _reshape_aval
reshape_p.jvp = lambda primals, tangents, new_sizes: (
    reshape(primals[0], new_sizes),
    reshape(tangents[0], new_sizes),
)
reshape_p.vjp = lambda needs, ct, out, x, new_sizes: (reshape(ct, shape_of(x)),)


def _reshape_batch(args, dims, new_sizes):
    (x,), (d,) = args, dims
    return reshape(moveaxis(x, d, 0), (shape_of(x)[d], *new_sizes)), 0


reshape_p.batch = _reshape_batch


def reshape(x, shape):
    shape = tuple(int(d) for d in shape)
    if shape_of(x) == shape:
        return x
    return reshape_p.bind(x, new_sizes=shape)


# =============================================================================================
# transpose
# =============================================================================================

transpose_p = Primitive("transpose")
transpose_p.impl = lambda x, permutation: jnp.transpose(x, permutation)


def _transpose_aval(x, permutation):
    aval = get_aval(x)
    return ShapedArray([aval.shape[p] for p in permutation], aval.dtype, aval.weak_type)


transpose_p.abstract_eval = _transpose_aval
transpose_p.jvp = lambda primals, tangents, permutation: (
    transpose(primals[0], permutation),
    transpose(tangents[0], permutation),
)
transpose_p.vjp = lambda needs, ct, out, x, permutation: (
    transpose(ct, tuple(np.argsort(permutation))),
)


def _transpose_batch(args, dims, permutation):
    (x,), (d,) = args, dims
    return transpose(x, (d, *(p + (p >= d) for p in permutation))), 0


transpose_p.batch = _transpose_batch


def transpose(x, permutation):
    permutation = tuple(int(p) for p in permutation)
    if permutation == tuple(range(len(permutation))):
        return x
    return transpose_p.bind(x, permutation=permutation)


def moveaxis(x, src, dst):
    """Move axis `src` of `x` to position `dst` (both non-negative)."""
    if src == dst:
        return x
    perm = [i for i in range(len(shape_of(x))) if i != src]
    perm.insert(dst, src)
    return transpose(x, perm)


def batch_size(args, dims):
    """The size of the batch axis, read from any batched operand."""
    return next(shape_of(a)[d] for a, d in zip(args, dims) if d is not None)


def batch_to_front(x, d, size):
    """`x` with its batch axis `d` first; an unbatched `x` (`d is None`) is broadcast."""
    from .elementwise import broadcast_to

    if d is None:
        shape = shape_of(x)
        return broadcast_to(reshape(x, (1, *shape)), (size, *shape))
    return moveaxis(x, d, 0)


# =============================================================================================
# concatenate
# =============================================================================================

concatenate_p = Primitive("concatenate")
concatenate_p.impl = lambda *xs, axis: jnp.concatenate(xs, axis=axis)


def _concatenate_aval(*xs, axis):
    avals = [get_aval(x) for x in xs]
    shape = list(avals[0].shape)
    for av in avals[1:]:
        if len(av.shape) != len(shape) or any(
            a != b for i, (a, b) in enumerate(zip(av.shape, shape)) if i != axis
        ):
            raise ValueError(
                "Cannot concatenate arrays of shapes "
                f"{[a.shape for a in avals]} along axis {axis}: all other axes must match."
            )
    shape[axis] = sum(av.shape[axis] for av in avals)
    return ShapedArray(shape, avals[0].dtype, all(a.weak_type for a in avals))


def _concatenate_jvp(primals, tangents, axis):
    out = concatenate_p.bind(*primals, axis=axis)
    ts = [
        t if t is not None else jnp.zeros(shape_of(p), get_aval(p).dtype)
        for p, t in zip(primals, tangents)
    ]
    return out, concatenate_p.bind(*ts, axis=axis)


def _concatenate_vjp(needs, ct, out, *xs, axis):
    from .indexing import slice_in_dim

    cts, start = [], 0
    for need, x in zip(needs, xs):
        size = shape_of(x)[axis]
        cts.append(slice_in_dim(ct, start, start + size, axis) if need else None)
        start += size
    return tuple(cts)


concatenate_p.abstract_eval = _concatenate_aval
concatenate_p.jvp = _concatenate_jvp
concatenate_p.vjp = _concatenate_vjp


def _concatenate_batch(args, dims, axis):
    size = batch_size(args, dims)
    xs = [batch_to_front(x, d, size) for x, d in zip(args, dims)]
    return concatenate_p.bind(*xs, axis=axis + 1), 0


concatenate_p.batch = _concatenate_batch


def concatenate(xs, axis):
    if len(xs) == 1:
        return xs[0]
    return concatenate_p.bind(*xs, axis=int(axis))


# =============================================================================================
# pad (lax semantics: (low, high, interior) per axis; edges may be negative, interior not)
# =============================================================================================

pad_p = Primitive("pad")
pad_p.impl = lambda x, padding_value, config: jax.lax.pad(
    x, jnp.asarray(padding_value, x.dtype), config
)


def _pad_aval(x, padding_value, config):
    aval = get_aval(x)
    shape = [
        lo + hi + d + max(d - 1, 0) * interior for d, (lo, hi, interior) in zip(aval.shape, config)
    ]
    return ShapedArray(shape, aval.dtype, aval.weak_type)


def _pad_jvp(primals, tangents, padding_value, config):
    (x,), (t,) = primals, tangents
    return pad(x, padding_value, config), pad(t, 0.0, config)


def _pad_vjp(needs, ct, out, x, padding_value, config):
    from .indexing import static_slice

    # Undo the edges first (a negative edge cropped the input: its cotangent is zero there),
    # then keep every (interior + 1)-th entry.
    unpadded = pad(ct, 0.0, [(-lo, -hi, 0) for lo, hi, _ in config])
    strides = [interior + 1 for _, _, interior in config]
    return (static_slice(unpadded, [0] * len(config), shape_of(unpadded), strides),)


pad_p.abstract_eval = _pad_aval
pad_p.jvp = _pad_jvp
pad_p.vjp = _pad_vjp


def _pad_batch(args, dims, padding_value, config):
    (x,), (d,) = args, dims
    config = (*config[:d], (0, 0, 0), *config[d:])
    return pad_p.bind(x, padding_value=padding_value, config=config), d


pad_p.batch = _pad_batch


def pad(x, padding_value, config):
    config = tuple((int(lo), int(hi), int(i)) for lo, hi, i in config)
    if all(c == (0, 0, 0) for c in config):
        return x
    return pad_p.bind(x, padding_value=padding_value, config=config)


__all__ = [
    "add_any",
    "batch_size",
    "batch_to_front",
    "concatenate",
    "moveaxis",
    "pad",
    "reshape",
    "transpose",
]
