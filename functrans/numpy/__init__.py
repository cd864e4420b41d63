"""`functrans.numpy`: the array namespace, with `jax.numpy`'s names and rules.

Every function here promotes dtypes and checks shapes as `jax.numpy` does, then binds
functrans primitives, so it works on concrete arrays and on values inside any functrans
transformation. Example:

    >>> import functrans as ft, functrans.numpy as fnp
    >>> float(ft.grad(lambda x: fnp.sum(fnp.sin(x) ** 2))(fnp.asarray(0.5)))  # doctest: +ELLIPSIS
    0.841...
"""

from __future__ import annotations

import builtins
import functools
import math

import jax
import jax.numpy as jnp
import numpy as _np
from jax.numpy import (  # dtypes and constants, shared with jax.numpy  # noqa: F401
    bfloat16,
    bool_,
    complex64,
    complex128,
    e,
    float16,
    float32,
    float64,
    floating,
    inexact,
    inf,
    int8,
    int16,
    int32,
    int64,
    integer,
    issubdtype,
    nan,
    newaxis,
    pi,
    result_type,
    uint8,
    uint32,
)

from .._src import core
from .._src.core import Tracer, get_aval, is_python_scalar
from .._src.core import issubdtype as _issubdtype
from .._src.prims import elementwise as ew
from .._src.prims import indexing as ix
from .._src.prims import linalg as la
from .._src.prims import reductions as red
from .._src.prims import structural as st
from . import fft, linalg  # noqa: F401

ndarray = jax.Array

# =============================================================================================
# Creation and conversion
# =============================================================================================


def _default_float():
    return _np.dtype(jax.dtypes.canonicalize_dtype(_np.float64))


def _default_int():
    return _np.dtype(jax.dtypes.canonicalize_dtype(_np.int64))


def asarray(a, dtype=None):
    """Convert `a` to an array (a functrans value stays one), optionally casting it."""
    if isinstance(a, Tracer):
        return a if dtype is None else ew.convert_element_type(a, _np.dtype(dtype))
    if isinstance(a, (list, tuple)) and builtins.any(isinstance(v, Tracer) for v in _flat(a)):
        return stack([asarray(v, dtype) for v in a])
    try:
        return jnp.asarray(a, dtype=dtype)
    except TypeError as err:
        raise TypeError(
            f"Expected an array, a Python scalar or a nested list of numbers, got "
            f"{type(a).__name__} instead ({err})."
        ) from None


def _flat(a):
    for v in a:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def array(a, dtype=None, copy=True):
    return asarray(a, dtype)


def zeros(shape, dtype=None):
    return jnp.zeros(shape, dtype)


def ones(shape, dtype=None):
    return jnp.ones(shape, dtype)


def full(shape, fill_value, dtype=None):
    if isinstance(fill_value, Tracer):
        return broadcast_to(asarray(fill_value, dtype), shape)
    return jnp.full(shape, fill_value, dtype)


def zeros_like(a, dtype=None):
    aval = get_aval(a)
    return jnp.zeros(aval.shape, dtype or aval.dtype)


def ones_like(a, dtype=None):
    aval = get_aval(a)
    return jnp.ones(aval.shape, dtype or aval.dtype)


def full_like(a, fill_value, dtype=None):
    aval = get_aval(a)
    return full(aval.shape, fill_value, dtype or aval.dtype)


arange = jnp.arange
linspace = jnp.linspace
eye = jnp.eye
identity = jnp.identity
tri = jnp.tri


def shape(a):
    return get_aval(a).shape


def ndim(a):
    return get_aval(a).ndim


def size(a):
    return get_aval(a).size


# =============================================================================================
# Promotion
# =============================================================================================


def _promote(*args, to_inexact=False):
    """Cast operands to their common dtype, as `jax.numpy` does. Python scalars stay literal."""
    avals = [get_aval(a) for a in args]
    dt, weak = ew.result_type(tuple([(av.dtype, av.weak_type) for av in avals]))
    if to_inexact and not _issubdtype(dt, jnp.inexact):
        dt = _default_float()
    out = []
    for a, av in zip(args, avals):
        if is_python_scalar(a):
            out.append(a if not (to_inexact and type(a) is not float) else float(a))
        elif isinstance(a, (list, tuple)):
            out.append(asarray(a, dt))
        elif av.dtype != dt:
            out.append(ew.convert_element_type(a, dt))
        else:
            out.append(a)
    return out


def _all_scalars(args):
    return builtins.all(is_python_scalar(a) for a in args)


def _unary_float(fn):
    def wrapper(x):
        (x,) = _promote(x, to_inexact=True)
        return fn(x)

    return wrapper


def _binary(fn, to_inexact=False):
    def wrapper(x, y):
        x, y = _promote(x, y, to_inexact=to_inexact)
        ew._broadcast_shapes(shape(x), shape(y))  # a clear ValueError, in every context
        if is_python_scalar(x) and is_python_scalar(y):
            x = jnp.asarray(x)
        return fn(x, y)

    return wrapper


# =============================================================================================
# Elementwise math
# =============================================================================================

add = _binary(ew.add)
subtract = _binary(ew.sub)
multiply = _binary(ew.mul)
divide = true_divide = _binary(ew.div, to_inexact=True)
maximum = _binary(ew.max_p.bind)
minimum = _binary(ew.min_p.bind)
arctan2 = _binary(ew.atan2_p.bind, to_inexact=True)
remainder = mod = _binary(ew.rem_p.bind)
floor_divide = _binary(ew.floor_divide_p.bind)
equal = _binary(ew.eq_p.bind)
not_equal = _binary(ew.ne_p.bind)
less = _binary(ew.lt_p.bind)
less_equal = _binary(ew.le_p.bind)
greater = _binary(ew.gt_p.bind)
greater_equal = _binary(ew.ge_p.bind)
logical_and = _binary(ew.and_p.bind)
logical_or = _binary(ew.or_p.bind)
logical_xor = _binary(ew.xor_p.bind)


def logical_not(x):
    return ew.not_p.bind(asarray(x))


def negative(x):
    return ew.neg(asarray(x) if is_python_scalar(x) else x)


def positive(x):
    return x


def power(x, y):
    """`x ** y`; an integer Python exponent becomes an exact `integer_pow`, as in JAX."""
    if isinstance(y, (int, _np.integer)) and not isinstance(y, bool) and not is_python_scalar(x):
        if _issubdtype(get_aval(x).dtype, jnp.inexact) or y >= 0:
            return ew.integer_pow(x, int(y)) if y != 0 else ones_like(x)
    x, y = _promote(x, y)
    if _all_scalars((x, y)):
        x = jnp.asarray(x)
    return ew.pow(x, y)


def square(x):
    return power(x, 2)


def reciprocal(x):
    return divide(1.0, x)


exp = _unary_float(ew.exp)
log = _unary_float(ew.log)
expm1 = _unary_float(ew.expm1_p.bind)
log1p = _unary_float(ew.log1p_p.bind)
sin = _unary_float(ew.sin)
cos = _unary_float(ew.cos)
tan = _unary_float(ew.tan_p.bind)
arcsin = _unary_float(ew.asin_p.bind)
arccos = _unary_float(ew.acos_p.bind)
arctan = _unary_float(ew.atan_p.bind)
sinh = _unary_float(ew.sinh)
cosh = _unary_float(ew.cosh)
tanh = _unary_float(ew.tanh)
arcsinh = _unary_float(ew.asinh_p.bind)
arccosh = _unary_float(ew.acosh_p.bind)
arctanh = _unary_float(ew.atanh_p.bind)
sqrt = _unary_float(ew.sqrt)
rsqrt = _unary_float(ew.rsqrt)
floor = _unary_float(ew.floor)
ceil = _unary_float(ew.ceil_p.bind)
round = _unary_float(ew.round_p.bind)  # noqa: A001


def log2(x):
    return divide(log(x), math.log(2))


def log10(x):
    return divide(log(x), math.log(10))


def exp2(x):
    return exp(multiply(x, math.log(2)))


def abs(x):  # noqa: A001
    x = asarray(x) if is_python_scalar(x) else x
    return ew.abs_p.bind(x)


absolute = abs


def real(x):
    """The real part (a real array is returned as it is), as `jnp.real`."""
    from .._src.prims import complex as cx

    return cx.real(x if isinstance(x, Tracer) else asarray(x))


def imag(x):
    """The imaginary part (zeros for a real array), as `jnp.imag`."""
    from .._src.prims import complex as cx

    return cx.imag(x if isinstance(x, Tracer) else asarray(x))


def conj(x):
    """The complex conjugate (a real array is returned as it is), as `jnp.conj`."""
    from .._src.prims import complex as cx

    return cx.conj(x if isinstance(x, Tracer) else asarray(x))


conjugate = conj


def angle(z, deg=False):
    """The argument of complex values (0 or pi for reals), as `jnp.angle`."""
    out = arctan2(imag(z), real(z))
    return multiply(out, 180 / math.pi) if deg else out


def sign(x):
    return ew.sign(asarray(x) if is_python_scalar(x) else x)


def isfinite(x):
    return ew.is_finite_p.bind(asarray(x) if is_python_scalar(x) else x)


def isnan(x):
    return not_equal(x, x)


def isinf(x):
    return logical_not(logical_or(isfinite(x), isnan(x)))


def isposinf(x):
    return logical_and(isinf(x), greater(x, 0))


def isneginf(x):
    return logical_and(isinf(x), less(x, 0))


def where(condition, x=None, y=None):
    """`x` where `condition` holds, else `y` (the three-argument form only)."""
    if x is None or y is None:
        raise ValueError(
            "`functrans.numpy.where` needs all three arguments (`where(c, x, y)`); the "
            "one-argument form has a data-dependent shape. Use `jax.numpy.nonzero` on a "
            "concrete array instead."
        )
    x, y = _promote(x, y)
    if _all_scalars((x, y)):
        x = jnp.asarray(x)
    condition = asarray(condition) if not isinstance(condition, Tracer) else condition
    if get_aval(condition).dtype != _np.bool_:
        condition = not_equal(condition, 0)
    return ew.select(condition, x, y)


def clip(a, a_min=None, a_max=None, *, min=None, max=None):  # noqa: A002
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    if lo is not None:
        a = maximum(lo, a)
    if hi is not None:
        a = minimum(hi, a)
    return a


def logaddexp(x1, x2):
    """`log(exp(x1) + exp(x2))`, computed stably, with JAX's derivative at infinities.

    Its derivative is a custom rule (as `jax.numpy.logaddexp`): `exp(x1 - out)` for `x1`,
    with `+inf` read as 0 in that difference, so `logaddexp(inf, 0)` has slope 1, not NaN.
    """
    x1, x2 = _promote(x1, x2, to_inexact=True)
    return _logaddexp_rule()(x1, x2)


def _logaddexp_primal(x1, x2):
    amax = maximum(x1, x2)
    shift = where(isfinite(amax), amax, 0.0)
    return add(shift, log(add(exp(subtract(x1, shift)), exp(subtract(x2, shift)))))


def _logaddexp_jvp(primals, tangents):
    x1, x2 = primals
    t1, t2 = tangents
    out = _logaddexp_primal(x1, x2)
    no_posinf = lambda v: where(isposinf(v), 0.0, v)
    w1 = exp(subtract(no_posinf(x1), no_posinf(out)))
    w2 = exp(subtract(no_posinf(x2), no_posinf(out)))
    return out, add(multiply(t1, w1), multiply(t2, w2))


@functools.cache
def _logaddexp_rule():
    from .._src.custom import custom_jvp

    rule = custom_jvp(_logaddexp_primal)
    rule.defjvp(_logaddexp_jvp)
    return rule


def stop_gradient(x):
    return ew.stop_gradient(x)


# =============================================================================================
# Reductions
# =============================================================================================


def _axes(axis, nd):
    if axis is None:
        return tuple(range(nd))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -nd <= a < nd:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {nd}.")
        out.append(a % nd)
    return tuple(sorted(set(out)))


def _keep(y, shape_in, axes, keepdims):
    if not keepdims:
        return y
    return st.reshape(y, tuple(1 if i in axes else d for i, d in enumerate(shape_in)))


def _reduction(prim_fn, promote_bool=False):
    def reduce(a, axis=None, keepdims=False, dtype=None):
        a = asarray(a) if not isinstance(a, Tracer) else a
        aval = get_aval(a)
        if dtype is not None:
            a = asarray(a, dtype)
        elif promote_bool and not _issubdtype(aval.dtype, jnp.inexact):
            if aval.dtype == _np.bool_ or _issubdtype(aval.dtype, jnp.signedinteger):
                a = asarray(a, _default_int())
        axes = _axes(axis, aval.ndim)
        return _keep(prim_fn(a, axes), aval.shape, axes, keepdims)

    return reduce


sum = _reduction(red.reduce_sum, promote_bool=True)  # noqa: A001
prod = _reduction(red.reduce_prod, promote_bool=True)
max = amax = _reduction(red.reduce_max)  # noqa: A001
min = amin = _reduction(red.reduce_min)  # noqa: A001


def all(a, axis=None, keepdims=False):  # noqa: A001
    return min(asarray(a, bool), axis, keepdims)


def any(a, axis=None, keepdims=False):  # noqa: A001
    return max(asarray(a, bool), axis, keepdims)


def mean(a, axis=None, keepdims=False, dtype=None):
    a = asarray(a) if not isinstance(a, Tracer) else a
    aval = get_aval(a)
    (a,) = _promote(a, to_inexact=True)
    if dtype is not None:
        a = asarray(a, dtype)
    axes = _axes(axis, aval.ndim)
    n = int(_np.prod([aval.shape[i] for i in axes], dtype=_np.int64))
    return divide(sum(a, axes, keepdims), float(n))


def var(a, axis=None, keepdims=False, ddof=0):
    a = asarray(a) if not isinstance(a, Tracer) else a
    aval = get_aval(a)
    (a,) = _promote(a, to_inexact=True)
    axes = _axes(axis, aval.ndim)
    n = int(_np.prod([aval.shape[i] for i in axes], dtype=_np.int64))
    centered = subtract(a, mean(a, axes, keepdims=True))
    return divide(sum(multiply(centered, centered), axes, keepdims), float(n - ddof))


def std(a, axis=None, keepdims=False, ddof=0):
    return sqrt(var(a, axis, keepdims, ddof))


def _arg(prim):
    def arg(a, axis=None, keepdims=False):
        a = asarray(a) if not isinstance(a, Tracer) else a
        if axis is None:
            a, axis = reshape(a, (-1,)), 0
        nd = get_aval(a).ndim
        (ax,) = _axes(axis, nd)
        out = prim.bind(a, axis=ax, index_dtype=_default_int())
        return _keep(out, get_aval(a).shape, (ax,), keepdims)

    return arg


argmax = _arg(red.argmax_p)
argmin = _arg(red.argmin_p)


def cumsum(a, axis=None):
    a = asarray(a) if not isinstance(a, Tracer) else a
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    (ax,) = _axes(axis, get_aval(a).ndim)
    return red.cumsum(a, ax)


# =============================================================================================
# Shapes
# =============================================================================================


def reshape(a, newshape=None, order="C", *, shape=None):
    newshape = shape if newshape is None else newshape
    if order != "C":
        raise NotImplementedError("`functrans.numpy.reshape` supports only order='C'.")
    a = asarray(a) if not isinstance(a, Tracer) else a
    aval = get_aval(a)
    newshape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    if newshape.count(-1) > 1:
        raise ValueError(f"Can only specify one unknown dimension (-1), got shape {newshape}.")
    if -1 in newshape:
        known = int(_np.prod([d for d in newshape if d != -1], dtype=_np.int64))
        if known == 0 or aval.size % known:
            raise ValueError(
                f"Cannot reshape an array of shape {aval.shape} into shape {newshape}."
            )
        newshape = tuple(aval.size // known if d == -1 else d for d in newshape)
    return st.reshape(a, newshape)


def ravel(a):
    return reshape(a, (-1,))


def transpose(a, axes=None):
    a = asarray(a) if not isinstance(a, Tracer) else a
    nd = get_aval(a).ndim
    perm = tuple(reversed(range(nd))) if axes is None else tuple(ax % nd for ax in axes)
    if sorted(perm) != list(range(nd)):
        raise ValueError(f"`axes` {axes} is not a permutation of the {nd} axes of the array.")
    return st.transpose(a, perm)


def swapaxes(a, axis1, axis2):
    nd = ndim(a)
    perm = list(range(nd))
    perm[axis1 % nd], perm[axis2 % nd] = perm[axis2 % nd], perm[axis1 % nd]
    return transpose(a, perm)


def moveaxis(a, source, destination):
    nd = ndim(a)
    src = [s % nd for s in ((source,) if isinstance(source, int) else source)]
    dst = [d % nd for d in ((destination,) if isinstance(destination, int) else destination)]
    perm = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        perm.insert(d, s)
    return transpose(a, perm)


def expand_dims(a, axis):
    shp = list(shape(a))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(shp) + len(axes)
    for ax in sorted(x % nd for x in axes):
        shp.insert(ax, 1)
    return reshape(a, shp)


def squeeze(a, axis=None):
    shp = shape(a)
    if axis is None:
        axes = [i for i, d in enumerate(shp) if d == 1]
    else:
        axes = _axes(axis, len(shp))
        for ax in axes:
            if shp[ax] != 1:
                raise ValueError(
                    f"Cannot squeeze axis {ax} of an array of shape {shp}: its size is not 1."
                )
    return reshape(a, [d for i, d in enumerate(shp) if i not in axes])


def broadcast_to(a, shape):
    a = asarray(a) if not isinstance(a, Tracer) else a
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    ew._broadcast_to_aval(a, shape)  # raises a clear error for an impossible shape
    return ew.broadcast_to(a, shape)


def broadcast_arrays(*args):
    shp = ew._broadcast_shapes(*(shape(a) for a in args))
    return [broadcast_to(a, shp) for a in args]


def concatenate(arrays, axis=0):
    arrays = _promote(*arrays)
    arrays = [asarray(a) if is_python_scalar(a) else a for a in arrays]
    nd = ndim(arrays[0])
    if nd == 0:
        raise ValueError("Zero-dimensional arrays cannot be concatenated.")
    (ax,) = _axes(axis, nd)
    return st.concatenate(arrays, ax)


def stack(arrays, axis=0):
    if not arrays:
        raise ValueError("`stack` needs at least one array.")
    nd = ndim(arrays[0]) + 1
    ax = axis % nd
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax)


def hstack(arrays):
    return concatenate(arrays, axis=0 if ndim(arrays[0]) == 1 else 1)


def vstack(arrays):
    return concatenate([reshape(a, (1, -1)) if ndim(a) == 1 else a for a in arrays], axis=0)


def split(a, indices_or_sections, axis=0):
    shp = shape(a)
    (ax,) = _axes(axis, len(shp))
    n = shp[ax]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(
                f"array split does not result in an equal division: axis of size {n} into "
                f"{indices_or_sections} sections."
            )
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    return [ix.slice_in_dim(a, lo, hi, ax) for lo, hi in zip(bounds[:-1], bounds[1:])]


def flip(a, axis=None):
    nd = ndim(a)
    axes = _axes(axis, nd)
    return a[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(nd))]


def _take_fill(dtype, fill_value):
    if fill_value is not None:
        return fill_value
    dtype = _np.dtype(dtype)
    if dtype.kind in "fc":
        return float("nan")
    if dtype.kind == "b":
        return True
    info = _np.iinfo(dtype)
    return int(info.min if dtype.kind == "i" else info.max)


def take(a, indices, axis=None, mode=None, fill_value=None):
    """`jnp.take`: entries of `a` at `indices` along `axis` (of the flattened `a` by default).

    As in JAX, `mode=None` means `"fill"`: an index in `[-n, n)` counts from the end when
    negative, and any other index gives `fill_value` (NaN for floating point, the smallest
    integer for signed integers), with a zero derivative there. `"clip"` clamps indices into
    range and `"wrap"` takes them modulo `n`.
    """
    a = ravel(a) if axis is None else _as_array(a)
    ax = 0 if axis is None else _axes(axis, ndim(a))[0]
    n = shape(a)[ax]
    mode = "fill" if mode is None else mode
    if mode not in ("fill", "clip", "wrap", "promise_in_bounds"):
        raise ValueError(
            f"`take` got mode={mode!r}; use 'fill' (the default), 'clip', 'wrap' or "
            "'promise_in_bounds'."
        )
    traced = isinstance(indices, (Tracer, jax.core.Tracer))
    idx = indices if traced else _np.asarray(indices)
    if mode == "wrap":
        idx = idx % n
    elif mode in ("clip", "promise_in_bounds"):
        idx = clip(idx, 0, n - 1) if traced else _np.clip(idx, 0, n - 1)  # no wrapping
    else:
        valid = (idx >= -n) & (idx < n)
    fill = mode == "fill" and (traced or not bool(_np.all(valid)))
    # `ix.getitem`, not `a[...]`: a constant JAX array indexed by a functrans value must
    # still go through functrans (JAX's own `__getitem__` would refuse the index). It clamps
    # indices into range.
    out = ix.getitem(a, (slice(None),) * ax + (idx,))
    if not fill:
        return out
    keep = (1,) * ax + tuple(shape(idx)) + (1,) * (ndim(a) - ax - 1)
    return where(reshape(valid, keep), out, _take_fill(get_aval(out).dtype, fill_value))


def tile(a, reps):
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    a = reshape(a, (1,) * (len(reps) - ndim(a)) + shape(a)) if len(reps) > ndim(a) else a
    reps = (1,) * (ndim(a) - len(reps)) + reps
    out = a
    for i, r in enumerate(reps):
        if r != 1:
            out = concatenate([out] * r, axis=i)
    return out


def tril(m, k=0):
    n, mm = shape(m)[-2:]
    return where(_np.tri(n, mm, k, dtype=bool), m, 0)


def triu(m, k=0):
    n, mm = shape(m)[-2:]
    return where(_np.tri(n, mm, k - 1, dtype=bool), 0, m)


def trace(a):
    n = builtins.min(shape(a)[-2:])
    return sum(multiply(a[..., :n, :n], _np.eye(n, dtype=get_aval(a).dtype)), axis=(-2, -1))


def diagonal(a):
    n = builtins.min(shape(a)[-2:])
    idx = _np.arange(n)
    return a[..., idx, idx]


# =============================================================================================
# Products
# =============================================================================================


def _as_array(a):
    # A NumPy operand whose dtype JAX keeps is a valid operand as it is: converting it here
    # would cost a JAX dispatch on every call (a constant weight matrix in an eager loop).
    if isinstance(a, (Tracer, jax.Array)) or (
        type(a) is _np.ndarray and jax.dtypes.canonicalize_dtype(a.dtype) == a.dtype
    ):
        return a
    return asarray(a)


def matmul(a, b):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch axes."""
    a, b = _promote(_as_array(a), _as_array(b))
    sa, sb = shape(a), shape(b)
    if not sa or not sb:
        raise ValueError("`matmul` does not accept scalar operands; use `*` instead.")
    if sa[-1] != sb[builtins.max(len(sb) - 2, 0)]:
        raise ValueError(
            f"matmul: input operand 1 has a mismatch in its core dimension 0, with shapes "
            f"{sa} and {sb} (size {sb[builtins.max(len(sb) - 2, 0)]} is different from {sa[-1]})."
        )
    if len(sb) <= 2:
        # No batch axes on b: contract a's last axis with b's first directly.
        return la.dot_general(a, b, (((len(sa) - 1,), (0,)), ((), ())))
    a1 = len(sa) == 1
    if a1:
        a = reshape(a, (1, sa[0]))
    batch = ew._broadcast_shapes(shape(a)[:-2], sb[:-2])
    a = broadcast_to(a, batch + shape(a)[-2:])
    b = broadcast_to(b, batch + sb[-2:])
    out = la.matmul2(a, b)
    return squeeze(out, -2) if a1 else out


def dot(a, b):
    a, b = _promote(_as_array(a), _as_array(b))
    sa, sb = shape(a), shape(b)
    if not sa or not sb:
        return multiply(a, b)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[cb]:
        raise ValueError(
            f"`dot`: shapes {sa} and {sb} are not aligned: "
            f"{sa[-1]} (axis {len(sa) - 1}) != {sb[cb]} (axis {cb})."
        )
    return la.dot_general(a, b, (((len(sa) - 1,), (cb,)), ((), ())))


def vdot(a, b):
    return dot(ravel(a), ravel(b))


def inner(a, b):
    if ndim(a) == 0 or ndim(b) == 0:
        return multiply(a, b)  # as NumPy: the inner product with a scalar is a product
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def tensordot(a, b, axes=2):
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = ndim(a), ndim(b)
    if isinstance(axes, int):
        ca, cb = list(range(na - axes, na)), list(range(axes))
    else:
        ca, cb = axes
        ca = [ca] if isinstance(ca, int) else list(ca)
        cb = [cb] if isinstance(cb, int) else list(cb)
    ca = [x % na for x in ca]
    cb = [x % nb for x in cb]
    return la.dot_general(a, b, ((tuple(ca), tuple(cb)), ((), ())))


def _einsum_diagonals(s, x):
    """Take the diagonal for each index repeated within one operand (`"ii->i"`)."""
    while len(set(s)) != len(s):
        c = next(c for c in s if s.count(c) > 1)
        p1 = s.index(c)
        p2 = s.index(c, p1 + 1)
        n = shape(x)[p1]
        mask_shape = [1] * len(s)
        mask_shape[p1] = mask_shape[p2] = n
        mask = _np.eye(n, dtype=get_aval(x).dtype).reshape(mask_shape)
        x = red.reduce_sum(ew.mul(x, mask), (p2,))
        s = s[:p2] + s[p2 + 1 :]
    return s, x


def einsum(subscripts, *operands):
    """Einstein summation over explicit or implicit subscripts, contracted pairwise."""
    operands = _promote(*[_as_array(o) for o in operands])
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise NotImplementedError("`functrans.numpy.einsum` does not support '...' yet.")
    if "->" in spec:
        ins, out = spec.split("->")
    else:
        ins = spec
        letters = ins.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = ins.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum: {len(ins)} subscripts for {len(operands)} operands.")
    for s, o in zip(ins, operands):
        if len(s) != ndim(o):
            raise ValueError(
                f"einsum: subscript {s!r} does not match an operand of shape {shape(o)}."
            )
    terms = [_einsum_diagonals(s, o) for s, o in zip(ins, operands)]

    def needed(skip):
        rest = "".join(s for j, (s, _) in enumerate(terms) if j not in skip)
        return set(out) | set(rest)

    # Sum out every index that only one operand carries and the output does not keep.
    for i, (s, o) in enumerate(terms):
        keep = needed({i})
        drop = tuple(k for k, c in enumerate(s) if c not in keep)
        if drop:
            terms[i] = ("".join(c for c in s if c in keep), red.reduce_sum(o, drop))
    while len(terms) > 1:
        (sa, a), (sb, b) = terms[0], terms[1]
        keep = needed({0, 1})
        batch = [c for c in sa if c in sb and c in keep]
        contract = [c for c in sa if c in sb and c not in keep]
        dn = (
            (tuple(sa.index(c) for c in contract), tuple(sb.index(c) for c in contract)),
            (tuple(sa.index(c) for c in batch), tuple(sb.index(c) for c in batch)),
        )
        res = la.dot_general(a, b, dn)
        s_res = (
            "".join(batch)
            + "".join(c for c in sa if c not in sb)
            + "".join(c for c in sb if c not in sa)
        )
        terms = [(s_res, res)] + terms[2:]
    s, res = terms[0]
    for c in out:
        if c not in s:
            raise ValueError(f"einsum: output index {c!r} appears in no operand.")
    return st.transpose(res, tuple(s.index(c) for c in out))


dtype = jnp.dtype
