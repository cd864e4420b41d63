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
import string

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
from ._sorting import (  # noqa: F401
    argsort,
    median,
    nonzero,
    percentile,
    quantile,
    searchsorted,
    sort,
    take_along_axis,
)

ndarray = jax.Array

# =============================================================================================
# Creation and conversion
# =============================================================================================


def _default_float():
    return _np.dtype(jax.dtypes.canonicalize_dtype(_np.float64))


@functools.cache
def _inexact_of(dtype, x64):
    return _np.dtype(jax.eval_shape(jnp.sqrt, jax.ShapeDtypeStruct((), dtype)).dtype)


def _inexact_dtype(dtype):
    """The floating dtype `jax.numpy` computes an integer or boolean array in (`sqrt`, `/`,
    `mean`): float32 for int32 even with x64 on, float64 for int64."""
    return _inexact_of(_np.dtype(dtype), bool(jax.config.jax_enable_x64))


def _default_uint():
    return _np.dtype(jax.dtypes.canonicalize_dtype(_np.uint64))


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


def copy(a, order=None):
    """A copy of `a`, as `jax.numpy.copy`. Arrays are immutable, so a traced value is its own
    copy; a NumPy or JAX array is copied into a new JAX array."""
    return a if isinstance(a, Tracer) else jnp.array(a, copy=True)


def zeros(shape, dtype=None):
    return jnp.zeros(shape, dtype)


def ones(shape, dtype=None):
    return jnp.ones(shape, dtype)


def full(shape, fill_value, dtype=None):
    if isinstance(fill_value, Tracer):
        return broadcast_to(asarray(fill_value, dtype), shape)
    return jnp.full(shape, fill_value, dtype)


def zeros_like(a, dtype=None, shape=None):
    """Zeros with the dtype of `a` and its shape, or `shape` when given (as `jnp.zeros_like`)."""
    aval = get_aval(a)
    return jnp.zeros(aval.shape if shape is None else shape, dtype or aval.dtype)


def ones_like(a, dtype=None, shape=None):
    """Ones with the dtype of `a` and its shape, or `shape` when given (as `jnp.ones_like`)."""
    aval = get_aval(a)
    return jnp.ones(aval.shape if shape is None else shape, dtype or aval.dtype)


def full_like(a, fill_value, dtype=None, shape=None):
    """`fill_value` with the dtype of `a` and its shape, or `shape` when given.

    A traced `fill_value` stays differentiable: it is broadcast, not baked in as a constant.
    """
    aval = get_aval(a)
    return full(aval.shape if shape is None else shape, fill_value, dtype or aval.dtype)


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
        dt = _default_float() if weak else _inexact_dtype(dt)
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


def _rounding(fn, name):
    """`floor`, `ceil`, `trunc`: integers and booleans are returned as they are, as in JAX."""

    def rounded(x):
        x = x if isinstance(x, Tracer) else asarray(x)
        if not _issubdtype(get_aval(x).dtype, jnp.inexact):
            return x
        return fn(x)

    rounded.__name__ = rounded.__qualname__ = name
    rounded.__doc__ = f"`jax.numpy.{name}`, elementwise; its derivative is zero almost everywhere."
    return rounded


floor = _rounding(ew.floor, "floor")
ceil = _rounding(ew.ceil_p.bind, "ceil")
trunc = _rounding(lambda x: where(less(x, 0), ew.ceil_p.bind(x), ew.floor(x)), "trunc")
_round_half_even = _rounding(ew.round_p.bind, "round")


def round(a, decimals=0):  # noqa: A001
    """Round to `decimals` decimal places, halves to even, as `jax.numpy.round`.

    For `decimals != 0` the value is scaled by `10**decimals`, rounded and scaled back, as JAX
    does (so the scaled product's own rounding decides near-halves). Negative `decimals`
    round to tens, hundreds, ... The derivative is zero almost everywhere.

    >>> import functrans.numpy as fnp
    >>> fnp.round(fnp.asarray([14.0, 25.0, -15.0]), -1).tolist()  # halves go to even
    [10.0, 20.0, -20.0]
    """
    if decimals == 0:
        return _round_half_even(a)
    a = a if isinstance(a, Tracer) else asarray(a)
    if not _issubdtype(get_aval(a).dtype, jnp.inexact):
        if decimals > 0:
            return a  # integers have no decimals to round
        raise NotImplementedError(
            "`functrans.numpy.round` of integers to `decimals < 0` is not implemented (nor in "
            "jax.numpy); cast to a floating dtype first."
        )
    (a,) = _promote(a, to_inexact=True)
    factor = 10**decimals
    return divide(_round_half_even(multiply(a, factor)), factor)


around = round


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


def _mask(name, where, shape_in):
    """The `where=` argument of a reduction, checked: a boolean array that fits `shape_in`.

    `jax.numpy` would broadcast the input up to a larger mask and then reduce the input's
    original axes of the broadcast array; here such a mask is an error instead.
    """
    where = asarray(where) if not isinstance(where, Tracer) else where
    aval = get_aval(where)
    if aval.dtype != _np.bool_:
        raise ValueError(
            f"`functrans.numpy.{name}`: `where` must be None or a boolean array, got dtype "
            f"{aval.dtype} instead; pass a mask such as `x > 0` or `mask.astype(bool)`."
        )
    try:
        fits = ew._broadcast_shapes(aval.shape, shape_in) == tuple(shape_in)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"`functrans.numpy.{name}`: the `where` mask of shape {aval.shape} does not "
            f"broadcast to the shape {tuple(shape_in)} of the array it masks; pass a mask of "
            "that shape, or one that broadcasts to it."
        )
    return where


def _masked(x, mask, fill):
    # `where` is a keyword of the reductions, so they reach the function through this helper.
    # Selecting (rather than multiplying by the mask) keeps a derivative of exactly zero at
    # masked-out entries, even where they hold inf or NaN.
    return where(mask, x, fill)


def _count(mask, shape_in, axes, keepdims, dtype):
    """How many entries `mask` keeps along `axes`: the divisor of a masked mean."""
    return sum(asarray(broadcast_to(mask, shape_in), dtype), axes, keepdims=keepdims)


def _identity(name, dtype):
    """The value a masked-out entry takes: the identity of the reduction `name` in `dtype`."""
    dtype = _np.dtype(dtype)
    if name in ("sum", "prod"):
        one = name == "prod"
        return one if dtype == _np.bool_ else int(one)
    if dtype == _np.bool_:
        return name == "min"
    if dtype.kind in "iu":
        info = _np.iinfo(dtype)
        return int(info.min if name == "max" else info.max)
    return -math.inf if name == "max" else math.inf


def _initial(name, initial, dtype):
    """`initial=` of a reduction as a scalar of the reduction's dtype (as `jax.numpy` casts it)."""
    initial = asarray(initial) if not isinstance(initial, Tracer) else initial
    if get_aval(initial).shape != ():
        raise ValueError(
            f"`functrans.numpy.{name}`: `initial` must be a scalar, got an array of shape "
            f"{get_aval(initial).shape} instead; reduce it first, e.g. `initial=init.max()`."
        )
    return asarray(initial, dtype)


def _reduction(prim_fn, name, combine, promote_bool=False, has_identity=True):
    def reduce(a, axis, keepdims, dtype, initial, where):
        if where is not None and initial is None and not has_identity:
            raise ValueError(
                f"`functrans.numpy.{name}` has no identity, so a `where` mask needs an "
                f"`initial` value too (the result where every entry is masked out), e.g. "
                f"`{name}(x, where=mask, initial={'-' if name == 'max' else ''}jnp.inf)`, "
                f"as in `jax.numpy.{name}`."
            )
        a = asarray(a) if not isinstance(a, Tracer) else a
        aval = get_aval(a)
        if dtype is not None:
            a = asarray(a, dtype)
        elif promote_bool and not _issubdtype(aval.dtype, jnp.inexact):
            if aval.dtype == _np.bool_ or _issubdtype(aval.dtype, jnp.signedinteger):
                a = asarray(a, _default_int())
            elif _issubdtype(aval.dtype, jnp.unsignedinteger):
                a = asarray(a, _default_uint())
        axes = _axes(axis, aval.ndim)
        if where is not None:
            mask = _mask(name, where, aval.shape)
            a = _masked(a, mask, _identity(name, get_aval(a).dtype))
        out = prim_fn(a, axes)
        if initial is not None:
            # As in JAX, `initial` joins the reduction afterwards: `max(initial, max(a))`.
            out = combine(_initial(name, initial, get_aval(a).dtype), out)
        return _keep(out, aval.shape, axes, keepdims)

    # The arguments in `jax.numpy`'s order, so that positional calls mean the same thing.
    if has_identity:

        def reduction(
            a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
            promote_integers=True,
        ):  # fmt: skip
            _no_out(name, out)
            if not promote_integers and dtype is None:
                dtype = get_aval(a if isinstance(a, Tracer) else asarray(a)).dtype
            return reduce(a, axis, keepdims, dtype, initial, where)
    else:

        def reduction(a, axis=None, out=None, keepdims=False, initial=None, where=None):
            _no_out(name, out)
            return reduce(a, axis, keepdims, None, initial, where)

    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = (
        f"`jax.numpy.{name}` over `axis` (all axes by default), with `keepdims`"
        + (" and `dtype`" if has_identity else "")
        + ".\n\n`where` (a boolean mask that broadcasts to `a`) leaves entries out, with a zero "
        "derivative there;\n`initial` (a scalar) joins the result as one more entry."
        + ("" if has_identity else f" `{name}` has no identity: `where` needs `initial`.")
    )
    return reduction


sum = _reduction(red.reduce_sum, "sum", add, promote_bool=True)  # noqa: A001
prod = _reduction(red.reduce_prod, "prod", multiply, promote_bool=True)
max = amax = _reduction(red.reduce_max, "max", maximum, has_identity=False)  # noqa: A001
min = amin = _reduction(red.reduce_min, "min", minimum, has_identity=False)  # noqa: A001


def _no_out(name, out):
    if out is not None:
        raise NotImplementedError(
            f"`functrans.numpy.{name}` does not support `out` (arrays are immutable, as in "
            "JAX); use the returned array instead."
        )


def all(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Whether every entry along `axis` is nonzero; `where` leaves entries out (True if none)."""
    _no_out("all", out)
    a = asarray(a, bool)
    if where is not None:
        a = _masked(a, _mask("all", where, shape(a)), True)
    return min(a, axis, keepdims=keepdims)


def any(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Whether some entry along `axis` is nonzero; `where` leaves entries out (False if none)."""
    _no_out("any", out)
    a = asarray(a, bool)
    if where is not None:
        a = _masked(a, _mask("any", where, shape(a)), False)
    return max(a, axis, keepdims=keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """`jax.numpy.mean`; with `where`, the mean of the entries the mask keeps.

    The divisor is then the number of kept entries along `axis` (NaN where there is none).
    """
    _no_out("mean", out)
    a = asarray(a) if not isinstance(a, Tracer) else a
    aval = get_aval(a)
    (a,) = _promote(a, to_inexact=True)
    if dtype is not None:
        a = asarray(a, dtype)
    axes = _axes(axis, aval.ndim)
    if where is not None:
        mask = _mask("mean", where, aval.shape)
        count = _count(mask, aval.shape, axes, keepdims, get_aval(a).dtype)
        return divide(sum(a, axes, keepdims=keepdims, where=mask), count)
    n = int(_np.prod([aval.shape[i] for i in axes], dtype=_np.int64))
    return divide(sum(a, axes, keepdims=keepdims), float(n))


def _ddof(name, ddof, correction):
    if correction is None:
        return ddof
    if not isinstance(ddof, int) or ddof != 0:
        raise ValueError(
            f"`functrans.numpy.{name}` got both `ddof={ddof}` and `correction={correction}`; "
            "`correction` is the Array API name of `ddof`, so pass only one of them."
        )
    return correction


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    """`jax.numpy.var`: the mean squared deviation, divided by `N - ddof`.

    `correction` is another name for `ddof`. With `where`, only the entries the mask keeps
    count, `N` is their number along `axis`, and masked-out entries get a zero derivative.
    Where `N - ddof <= 0` the result is NaN, as in JAX. `dtype` (inexact) is the dtype the
    variance is computed and returned in.
    """
    _no_out("var", out)
    ddof = _ddof("var", ddof, correction)
    a = asarray(a) if not isinstance(a, Tracer) else a
    aval = get_aval(a)
    (a,) = _promote(a, to_inexact=True)
    if dtype is not None:
        if not _issubdtype(dtype, jnp.inexact):
            raise ValueError(
                f"`functrans.numpy.var`/`std` computes in `dtype`, which must be a floating "
                f"or complex dtype; got {_np.dtype(dtype)} instead. Cast the result instead."
            )
        a = asarray(a, dtype)
    axes = _axes(axis, aval.ndim)
    if where is None:
        n = int(_np.prod([aval.shape[i] for i in axes], dtype=_np.int64))
        centered = subtract(a, mean(a, axes, keepdims=True))
        out = divide(sum(multiply(centered, centered), axes, keepdims=keepdims), float(n - ddof))
        return out if n - ddof > 0 else _masked(out, False, math.nan)
    mask = _mask("var", where, aval.shape)
    # Zeroing the masked-out entries first keeps inf or NaN there out of every derivative.
    a = _masked(a, mask, 0)
    centered = subtract(a, mean(a, axes, keepdims=True, where=mask))
    total = sum(multiply(centered, centered), axes, keepdims=keepdims, where=mask)
    normalizer = subtract(_count(mask, aval.shape, axes, keepdims, get_aval(a).dtype), ddof)
    return _masked(divide(total, normalizer), greater(normalizer, 0), math.nan)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    """`jax.numpy.std`: the square root of `var` with the same arguments."""
    _no_out("std", out)
    kw = {"ddof": ddof, "keepdims": keepdims, "where": where, "correction": correction}
    return sqrt(var(a, axis, dtype, **kw))


def _arg(prim):
    def arg(a, axis=None, out=None, keepdims=None):
        _no_out(prim.name, out)
        keepdims = bool(keepdims)
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


def cumsum(a, axis=None, dtype=None):
    """Running sums along `axis` (of the flattened `a` by default), as `jax.numpy.cumsum`.

    Booleans are counted in the default integer dtype. `dtype` is the dtype of the sums;
    `dtype=bool` counts the nonzero entries and reports whether any has been seen so far.
    """
    a = asarray(a) if not isinstance(a, Tracer) else a
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    (ax,) = _axes(axis, get_aval(a).ndim)
    in_dtype = get_aval(a).dtype
    if dtype is not None and _np.dtype(dtype) == _np.bool_:
        count = red.cumsum(asarray(not_equal(a, 0), _default_int()), ax)
        return asarray(count, bool)
    if dtype is not None:
        a = asarray(a, dtype)
    elif in_dtype == _np.bool_:
        a = asarray(a, _default_int())
    return red.cumsum(a, ax)


def cumprod(a, axis=None, dtype=None):
    """Running products along `axis` (of the flattened `a` by default), as `jax.numpy.cumprod`.

    Booleans multiply in the default integer dtype. The products are a scan of
    `ceil(log2(n))` steps, each multiplying the partial products by those `step` places
    earlier (Hillis and Steele, 1986), so the derivative is the product rule alone: exact
    where entries are zero (nothing divides by the input), to every order.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> x = fnp.asarray([2.0, 0.0, 3.0])
    >>> fnp.cumprod(x).tolist(), ft.grad(lambda x: fnp.cumprod(x)[-1])(x).tolist()
    ([2.0, 0.0, 0.0], [0.0, 6.0, 0.0])
    """
    a = asarray(a) if not isinstance(a, Tracer) else a
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    (ax,) = _axes(axis, get_aval(a).ndim)
    if dtype is not None:
        a = asarray(a, dtype)
    elif get_aval(a).dtype == _np.bool_:
        a = asarray(a, _default_int())
    n = shape(a)[ax]
    step = 1
    while step < n:
        # out[i] = out[i] * out[i - step] for i >= step: each partial product doubles its span
        later = multiply(ix.slice_in_dim(a, step, n, ax), ix.slice_in_dim(a, 0, n - step, ax))
        a = st.concatenate([ix.slice_in_dim(a, 0, step, ax), later], ax)
        step *= 2
    return a


def ptp(a, axis=None, out=None, keepdims=False):
    """`max - min` along `axis`, as `jax.numpy.ptp` (derivatives shared among ties as there)."""
    _no_out("ptp", out)
    return subtract(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


# `nan*` reductions: NaN entries replaced by the reduction's identity (by selection, so their
# derivative is zero); `nanmax`/`nanmin` of a slice of NaNs only is NaN, as in JAX.


def _without_nans(a, fill):
    a = asarray(a) if not isinstance(a, Tracer) else a
    if not _issubdtype(get_aval(a).dtype, jnp.inexact):
        return a, None
    nans = isnan(a)
    return where(nans, fill, a), nans


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """`jax.numpy.nansum`: `sum` with NaN entries counted as zero."""
    _no_out("nansum", out)
    a, _ = _without_nans(a, 0)
    return sum(a, axis=axis, keepdims=keepdims, dtype=dtype, initial=initial, where=where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """`jax.numpy.nanprod`: `prod` with NaN entries counted as one."""
    _no_out("nanprod", out)
    a, _ = _without_nans(a, 1)
    return prod(a, axis=axis, keepdims=keepdims, dtype=dtype, initial=initial, where=where)


def _nan_extremum(name, reduce, fill):
    def nan_reduce(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(name, out)
        a, nans = _without_nans(a, fill)
        res = reduce(a, axis=axis, keepdims=keepdims, initial=initial, where=where)
        if nans is None or initial is not None:
            return res
        return _masked(res, logical_not(all(nans, axis=axis, keepdims=keepdims)), math.nan)

    nan_reduce.__name__ = nan_reduce.__qualname__ = name
    nan_reduce.__doc__ = (
        f"`jax.numpy.{name}`: `{name[3:]}` ignoring NaN entries (NaN where all are NaN)."
    )
    return nan_reduce


nanmax = _nan_extremum("nanmax", max, -math.inf)
nanmin = _nan_extremum("nanmin", min, math.inf)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """`jax.numpy.nanmean`: the mean of the entries that are not NaN (NaN if there is none)."""
    _no_out("nanmean", out)
    a = asarray(a) if not isinstance(a, Tracer) else a
    if not _issubdtype(get_aval(a).dtype, jnp.inexact):
        return mean(a, axis=axis, keepdims=keepdims, dtype=dtype, where=where)
    kw = {"axis": axis, "keepdims": keepdims, "where": where}
    dtype = get_aval(a).dtype if dtype is None else dtype
    count = sum(logical_not(isnan(a)), dtype=dtype, **kw)
    return divide(nansum(a, dtype=dtype, **kw), count)


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
    ((ax1,), (ax2,)) = _axes(axis1, nd), _axes(axis2, nd)  # a clear error when out of bounds
    perm = list(range(nd))
    perm[ax1], perm[ax2] = perm[ax2], perm[ax1]
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


def concatenate(arrays, axis=0, dtype=None):
    """Join `arrays` along an existing `axis`, in their common dtype or in `dtype` if given.

    As in `jax.numpy`, `dtype` casts each array to it directly (`1.5` becomes `1` for an
    integer `dtype`), rather than promoting them together first.
    """
    if dtype is None:
        arrays = _promote(*arrays)
    else:
        arrays = [asarray(a, dtype) for a in arrays]
    arrays = [asarray(a) if is_python_scalar(a) else a for a in arrays]
    nd = ndim(arrays[0])
    if nd == 0:
        raise ValueError("Zero-dimensional arrays cannot be concatenated.")
    (ax,) = _axes(axis, nd)
    return st.concatenate(arrays, ax)


def stack(arrays, axis=0, out=None, dtype=None):
    """Join `arrays` along a new `axis`, in their common dtype or in `dtype` if given."""
    if not arrays:
        raise ValueError("`stack` needs at least one array.")
    if out is not None:
        raise NotImplementedError(
            "`functrans.numpy.stack` does not support `out` (arrays are immutable); use the "
            "returned array instead."
        )
    nd = ndim(arrays[0]) + 1
    ax = axis % nd
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax, dtype=dtype)


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


def take(
    a, indices, axis=None, out=None, mode=None, unique_indices=False, indices_are_sorted=False,
    fill_value=None,
):  # fmt: skip
    """`jnp.take`: entries of `a` at `indices` along `axis` (of the flattened `a` by default).

    As in JAX, `mode=None` means `"fill"`: an index in `[-n, n)` counts from the end when
    negative, and any other index gives `fill_value` (NaN for floating point, the smallest
    integer for signed integers), with a zero derivative there. `"clip"` clamps indices into
    range and `"wrap"` takes them modulo `n`. `unique_indices` and `indices_are_sorted` are
    accepted (hints to XLA in JAX) and change nothing.
    """
    _no_out("take", out)
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


def repeat(a, repeats, axis=None, *, total_repeat_length=None):
    """Each entry of `a` along `axis` (of the flattened `a` by default) `repeats` times.

    As `jax.numpy.repeat`: `repeats` is an int or one count per entry. Counts that are traced
    values need a static `total_repeat_length`; with it, the result is cut to that length or
    padded with the last entry. Derivatives sum over the copies.

    >>> import functrans.numpy as fnp
    >>> fnp.repeat(fnp.asarray([1.0, 2.0, 3.0]), fnp.asarray([2, 0, 1])).tolist()
    [1.0, 1.0, 3.0]
    """
    a = _as_array(a)
    if axis is None or ndim(a) == 0:
        a, axis = ravel(a), 0
    (ax,) = _axes(axis, ndim(a))
    n = shape(a)[ax]
    length = None if total_repeat_length is None else int(total_repeat_length)
    if isinstance(repeats, (Tracer, jax.core.Tracer)) and length is None:
        try:  # an eagerly recorded value still has its concrete counts
            repeats = repeats.to_concrete("repeat")
        except (TypeError, AttributeError):
            raise TypeError(
                "`functrans.numpy.repeat` got `repeats` as a traced value, so the length of "
                "its result is not known; pass a static `total_repeat_length` as well (as with "
                "`jnp.repeat`), or make `repeats` a static argument."
            ) from None
    if isinstance(repeats, (Tracer, jax.core.Tracer)):
        counts = broadcast_to(ravel(repeats), (n,))
        # entry j of the result comes from the last block that starts at or before j
        starts = subtract(cumsum(counts), counts)
        positions = _np.arange(length, dtype=get_aval(starts).dtype)
        idx = clip(subtract(searchsorted(starts, positions, "right"), 1), 0, n - 1)
        return ix.getitem(a, (slice(None),) * ax + (idx,))
    counts = _np.asarray(repeats)
    if not _issubdtype(counts.dtype, jnp.integer) or counts.ndim > 1 or _np.any(counts < 0):
        raise ValueError(
            "`functrans.numpy.repeat` needs non-negative integer `repeats`: an int or one per "
            f"entry along the axis, got {repeats!r}."
        )
    if counts.ndim == 0 and (length is None or length == n * int(counts)):
        r = int(counts)  # no gather: a new axis of r copies, merged into `axis`
        before, after = shape(a)[:ax], shape(a)[ax + 1 :]
        copies = broadcast_to(expand_dims(a, ax + 1), before + (n, r) + after)
        return reshape(copies, before + (n * r,) + after)
    if n == 0:
        return a
    idx = _np.repeat(_np.arange(n), _np.broadcast_to(counts.ravel(), (n,)))
    if length is not None:
        idx = _np.concatenate([idx[:length], _np.full(builtins.max(length - len(idx), 0), n - 1)])
    return ix.getitem(a, (slice(None),) * ax + (idx.astype(_np.int32),))


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


def _diagonal_axes(name, a, axis1, axis2):
    nd = ndim(a)
    if nd < 2:
        raise ValueError(
            f"`functrans.numpy.{name}` needs an array of at least two dimensions, got shape "
            f"{shape(a)} instead."
        )
    ((ax1,), (ax2,)) = _axes(axis1, nd), _axes(axis2, nd)
    if ax1 == ax2:
        raise ValueError(
            f"`functrans.numpy.{name}`: `axis1` and `axis2` must be two different axes, got "
            f"axis {ax1} for both."
        )
    return ax1, ax2


def trace(a, offset=0, axis1=0, axis2=1, dtype=None):
    """The sum of `diagonal(a, offset, axis1, axis2)`, as `jax.numpy.trace`.

    `dtype` is the dtype of the sum (integers and booleans sum in the default integer dtype
    otherwise).
    """
    ax1, ax2 = _diagonal_axes("trace", a, axis1, axis2)
    nd = ndim(a)
    if offset == 0 and dtype is None and (ax1, ax2) == (nd - 2, nd - 1):
        n = builtins.min(shape(a)[-2:])
        eye = _np.eye(n, dtype=get_aval(a).dtype)
        return sum(multiply(a[..., :n, :n], eye), axis=(-2, -1))
    return sum(diagonal(a, offset, ax1, ax2), axis=-1, dtype=dtype)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The `offset`-th diagonal of the matrices spanned by `axis1` and `axis2`.

    As in `jax.numpy.diagonal`, the diagonal is the last axis of the result, after the
    remaining axes in order; `offset > 0` reads above the main diagonal (`a[i, i + offset]`)
    and `offset < 0` below it.

    >>> import functrans.numpy as fnp
    >>> fnp.diagonal(fnp.arange(6.0).reshape(2, 3), offset=1).tolist()
    [1.0, 5.0]
    """
    ax1, ax2 = _diagonal_axes("diagonal", a, axis1, axis2)
    nd = ndim(a)
    if (ax1, ax2) != (nd - 2, nd - 1):
        a = moveaxis(a, (ax1, ax2), (-2, -1))
    n, m = shape(a)[-2:]
    if offset == 0:
        idx = _np.arange(builtins.min(n, m))
        return a[..., idx, idx]
    first_row, first_col = builtins.max(-offset, 0), builtins.max(offset, 0)
    k = _np.arange(builtins.max(0, builtins.min(n - first_row, m - first_col)))
    return a[..., k + first_row, k + first_col]


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


def _scaled(out, preferred_element_type):
    """A product that needed no `dot_general` (a scalar operand), in the requested dtype."""
    if preferred_element_type is None or get_aval(out).dtype == preferred_element_type:
        return out
    return ew.convert_element_type(out, preferred_element_type)


def matmul(a, b, *, precision=None, preferred_element_type=None):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch axes.

    `precision` and `preferred_element_type` are `jax.numpy.matmul`'s: the precision of the
    product on accelerators (`"highest"` asks for full float32 on GPU and TPU) and the dtype
    it accumulates in and returns; every derivative keeps them.

    >>> import functrans.numpy as fnp
    >>> fnp.matmul(fnp.ones((2, 3)), fnp.ones((3,)), precision="highest")
    Array([3., 3.], dtype=float32)
    """
    a, b = _promote(_as_array(a), _as_array(b))
    kw = {"precision": precision, "preferred_element_type": preferred_element_type}
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
        return la.dot_general(a, b, (((len(sa) - 1,), (0,)), ((), ())), **kw)
    a1 = len(sa) == 1
    if a1:
        a = reshape(a, (1, sa[0]))
    batch = ew._broadcast_shapes(shape(a)[:-2], sb[:-2])
    a = broadcast_to(a, batch + shape(a)[-2:])
    b = broadcast_to(b, batch + sb[-2:])
    nb = len(batch)
    axes = tuple(range(nb))
    out = la.dot_general(a, b, (((nb + 1,), (nb,)), (axes, axes)), **kw)
    return squeeze(out, -2) if a1 else out


def dot(a, b, *, precision=None, preferred_element_type=None):
    """`jax.numpy.dot`: a product with a scalar, or a's last axis contracted with b's
    second-to-last (its only axis if 1-D); `precision` and `preferred_element_type` as in
    `matmul`."""
    a, b = _promote(_as_array(a), _as_array(b))
    sa, sb = shape(a), shape(b)
    if not sa or not sb:
        return _scaled(multiply(a, b), preferred_element_type)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[cb]:
        raise ValueError(
            f"`dot`: shapes {sa} and {sb} are not aligned: "
            f"{sa[-1]} (axis {len(sa) - 1}) != {sb[cb]} (axis {cb})."
        )
    dn = (((len(sa) - 1,), (cb,)), ((), ()))
    return la.dot_general(a, b, dn, precision, preferred_element_type)


def vdot(a, b, *, precision=None, preferred_element_type=None):
    """`jax.numpy.vdot`: the dot product of the flattened operands (the first conjugated)."""
    a = conj(a) if _issubdtype(get_aval(_as_array(a)).dtype, jnp.complexfloating) else a
    kw = {"precision": precision, "preferred_element_type": preferred_element_type}
    return dot(ravel(a), ravel(b), **kw)


def inner(a, b, *, precision=None, preferred_element_type=None):
    """`jax.numpy.inner`: the last axes of both operands contracted."""
    if ndim(a) == 0 or ndim(b) == 0:
        # as NumPy: the inner product with a scalar is a product
        return _scaled(multiply(a, b), preferred_element_type)
    kw = {"precision": precision, "preferred_element_type": preferred_element_type}
    return tensordot(a, b, axes=([-1], [-1]), **kw)


def outer(a, b):
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def tensordot(a, b, axes=2, *, precision=None, preferred_element_type=None):
    """`jax.numpy.tensordot`: the last `axes` axes of a with the first of b, or the axis
    lists `(axes_a, axes_b)`; `precision` and `preferred_element_type` as in `matmul`."""
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
    dn = ((tuple(ca), tuple(cb)), ((), ()))
    return la.dot_general(a, b, dn, precision, preferred_element_type)


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


def _einsum_spec(spec, operands):
    """Subscripts with '...' spelled out, and the output's (NumPy's implicit rule if absent).

    The axes an ellipsis covers get letters the subscripts do not use, aligned from the right
    across operands as broadcasting aligns them.
    """
    ins, out = spec.split("->") if "->" in spec else (spec, None)
    ins = ins.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum: {len(ins)} subscripts for {len(operands)} operands.")
    for t in ins + ([out] if out is not None else []):
        rest = t.replace("...", "", 1)
        if rest and not rest.isalpha():
            raise ValueError(
                f"einsum: invalid subscript {t!r}: use letters and at most one '...' per operand."
            )
    spare = [c for c in string.ascii_letters if c not in spec]
    n_ell = builtins.max(
        [ndim(o) - len(t.replace("...", "")) for t, o in zip(ins, operands) if "..." in t],
        default=0,
    )
    ell = "".join(spare[:n_ell])
    spelled = []
    for t, o in zip(ins, operands):
        if "..." in t:
            k = ndim(o) - len(t.replace("...", ""))
            if k < 0:
                raise ValueError(
                    f"einsum: subscript {t!r} has more letters than its operand of shape "
                    f"{shape(o)} has axes."
                )
            t = t.replace("...", ell[n_ell - k :])
        spelled.append(t)
    if out is None:
        named = "".join(ins)
        out = ell + "".join(sorted(c for c in set(named) if c.isalpha() and named.count(c) == 1))
    else:
        out = out.replace("...", ell)
    return spelled, out


def einsum(
    subscripts, *operands, optimize="auto", precision=None, preferred_element_type=None, out=None
):
    """Einstein summation, as `jax.numpy.einsum`: explicit or implicit output, '...' for
    leading axes, size-1 axes broadcast; contracted pairwise from the left (`optimize` is
    accepted and ignored). `precision` and `preferred_element_type` as in `matmul`.

    >>> import functrans.numpy as fnp
    >>> fnp.einsum("...ij,...jk->...ik", fnp.ones((4, 2, 3)), fnp.ones((3, 5))).shape
    (4, 2, 5)
    """
    if out is not None:
        raise NotImplementedError("The 'out' argument to einsum is not supported (as in JAX).")
    if not isinstance(subscripts, str):
        raise TypeError(
            "`functrans.numpy.einsum` takes its subscripts as a string ('ij,jk->ik'), got "
            f"{type(subscripts).__name__}."
        )
    operands = _promote(*[_as_array(o) for o in operands])
    ins, out = _einsum_spec(subscripts.replace(" ", ""), operands)
    for s, o in zip(ins, operands):
        if len(s) != ndim(o):
            raise ValueError(
                f"einsum: subscript {s!r} does not match an operand of shape {shape(o)}."
            )
    terms = [_einsum_diagonals(s, o) for s, o in zip(ins, operands)]
    # A size-1 axis broadcasts against the same index elsewhere: drop it from its operand.
    size = {}
    for s, o in terms:
        for c, d in zip(s, shape(o)):
            if size.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(
                    f"einsum: index {c!r} has sizes {size[c]} and {d}, which do not broadcast."
                )
            size[c] = builtins.max(size.get(c, 1), d)
    for i, (s, o) in enumerate(terms):
        ones = tuple(k for k, c in enumerate(s) if shape(o)[k] == 1 and size[c] != 1)
        if ones:
            terms[i] = ("".join(c for k, c in enumerate(s) if k not in ones), squeeze(o, ones))
    kw = {"precision": precision, "preferred_element_type": preferred_element_type}

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
        res = la.dot_general(a, b, dn, **kw)
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
    res = st.transpose(res, tuple(s.index(c) for c in out))
    return _scaled(res, preferred_element_type) if len(operands) == 1 else res


dtype = jnp.dtype
