"""Elementwise primitives: unary and binary math, comparisons, `select`, dtype conversion.

Binary primitives broadcast their operands as NumPy does and require array operands of one
dtype (`functrans.numpy` promotes first); a Python scalar operand takes the dtype of the
others, as a weakly typed literal. Each differentiable primitive is defined by its partial
derivatives, from which both its JVP and its VJP rule are made: for an elementwise map the
derivative is a diagonal operator, so the same partial serves both directions.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval, is_python_scalar

# =============================================================================================
# Shared machinery
# =============================================================================================


def _broadcast_shapes(*shapes):
    # NumPy's rule in plain Python: np.broadcast_shapes costs several microseconds a call, and
    # every recorded binary operation asks (tests/test_fuzz.py checks the two agree).
    out = list(shapes[0]) if shapes else []
    for s in shapes[1:]:
        if len(s) > len(out):
            out = [1] * (len(s) - len(out)) + out
        off = len(out) - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise ValueError(
                    f"Incompatible shapes for broadcasting: shapes={list(shapes)}. Operands of "
                    "an elementwise operation must have equal sizes or size 1 in each trailing "
                    "axis."
                )
    return tuple(out)


_WEAK_REP = {"f": 0.0, "i": 0, "u": 0, "c": 0j, "b": False}


@functools.lru_cache(maxsize=4096)
def result_type(key):
    """`(dtype, weak)` of a promotion of operands given as a tuple of `(dtype, weak)`."""
    reps = [_WEAK_REP[d.kind] if w else d for d, w in key]
    return np.dtype(jnp.result_type(*reps)), all(w for _, w in key)


def _elementwise_aval(*args, **params):
    avals = [get_aval(a) for a in args]
    shape = _broadcast_shapes(*(av.shape for av in avals))
    dtype, weak = result_type(tuple((av.dtype, av.weak_type) for av in avals))
    return ShapedArray(shape, dtype, weak)


def _compare_aval(*args, **params):
    avals = [get_aval(a) for a in args]
    return ShapedArray(_broadcast_shapes(*(av.shape for av in avals)), np.bool_)


def shape_of(x):
    return tuple(getattr(x, "shape", ()))


def dtype_of(x):
    return get_aval(x).dtype


def _scale(t, d):
    """`t * d`, skipping the multiplication when `d` is the literal 1 or -1."""
    if d is None:
        return None
    if is_python_scalar(d):
        if d == 1:
            return t
        if d == -1:
            return neg(t)
    return mul(t, d)


def broadcast_batcher(prim):
    """The batching rule of a broadcasting elementwise primitive.

    When every array operand is batched at the same axis and has the full per-example rank,
    the primitive applies as it is. Otherwise the batch axes move to the front, and singleton
    axes are inserted after them so that each operand's per-example axes still line up with
    NumPy broadcasting against the others (unbatched operands align from the right).
    """

    def rule(args, dims, **params):
        from .structural import moveaxis, reshape

        shapes = [shape_of(a) for a in args]
        ranks = [len(s) - (d is not None) for s, d in zip(shapes, dims)]
        rank = max(ranks)
        batched = {(r, d) for r, d in zip(ranks, dims) if d is not None}
        unbatched_arrays = any(d is None and s for s, d in zip(shapes, dims))
        if len(batched) == 1:
            ((r, d),) = batched
            if r == rank and (d == 0 or not unbatched_arrays):
                return prim.bind(*args, **params), d
        new = []
        for a, s, r, d in zip(args, shapes, ranks, dims):
            if d is not None:
                per = s[:d] + s[d + 1 :]
                a = reshape(moveaxis(a, d, 0), (s[d],) + (1,) * (rank - r) + per)
            new.append(a)
        return prim.bind(*new, **params), 0

    return rule


def unary(name, impl, deriv=None, differentiable=True):
    """A unary elementwise primitive whose derivative is `deriv(x, out)`."""
    p = Primitive(name, differentiable=differentiable and deriv is not None)
    p.impl = impl
    p.abstract_eval = _elementwise_aval
    p.batch = broadcast_batcher(p)
    if deriv is not None:

        def jvp(primals, tangents, **params):
            (x,), (t,) = primals, tangents
            out = p.bind(x, **params)
            return out, _scale(t, deriv(x, out, **params))

        def vjp(needs, ct, out, x, **params):
            return (_scale(ct, deriv(x, out, **params)),)

        p.jvp, p.vjp = jvp, vjp
    return p


def binary(name, impl, dx=None, dy=None, differentiable=True):
    """A broadcasting binary primitive with partial derivatives `dx(x, y, out)`, `dy(...)`."""
    p = Primitive(name, differentiable=differentiable and dx is not None)
    p.impl = impl
    p.abstract_eval = _elementwise_aval
    p.batch = broadcast_batcher(p)
    if dx is not None:

        def jvp(primals, tangents):
            (x, y), (tx, ty) = primals, tangents
            out = p.bind(x, y)
            oshape = shape_of(out)
            terms = [
                broadcast_to(_scale(t, d(x, y, out)), oshape)
                for t, d in ((tx, dx), (ty, dy))
                if t is not None
            ]
            return out, terms[0] if len(terms) == 1 else add_any(*terms)

        def vjp(needs, ct, out, x, y):
            return tuple(
                unbroadcast(_scale(ct, d(x, y, out)), shape_of(v)) if need else None
                for need, d, v in ((needs[0], dx, x), (needs[1], dy, y))
            )

        p.jvp, p.vjp = jvp, vjp
    return p


def _one(*_):
    return 1


def _minus_one(*_):
    return -1


# =============================================================================================
# Binary arithmetic
# =============================================================================================

add_p = binary("add", jnp.add, _one, _one)
sub_p = binary("sub", jnp.subtract, _one, _minus_one)
mul_p = binary("mul", jnp.multiply, lambda x, y, z: y, lambda x, y, z: x)
div_p = binary(
    "div",
    jnp.true_divide,
    lambda x, y, z: div(1, y),  # d(x/y)/dx = 1/y
    lambda x, y, z: neg(div(z, y)),  # d(x/y)/dy = -x/y^2 = -(x/y)/y
)


def _pow_dx(x, y, z):
    return mul(y, pow(x, sub(y, 1)))  # d x^y/dx = y x^(y-1)


def _pow_dy(x, y, z):
    # log(x) * x**y, with log(0) replaced by 0 (as JAX does)
    return mul(log(select(eq(x, 0), 1.0, x)), z)


pow_p = binary("pow", jnp.power, _pow_dx, _pow_dy)


def _wins(beats):
    """The derivative of `max` (`beats` = `gt_p`) or `min` (`lt_p`) in one operand.

    1 where that operand wins, 1/2 at a tie (JAX's balanced rule), 0 where the other wins
    (and at a NaN). The operands are compared with each other, not with the output: XLA may
    compute an operand again in another fusion, rounded differently (a contracted
    multiply-add), and then neither would equal the output and both derivatives would be
    silently 0.
    """

    def first(x, y, z):
        return select(beats.bind(x, y), 1.0, select(eq(x, y), 0.5, 0.0))

    def second(x, y, z):
        return select(beats.bind(y, x), 1.0, select(eq(x, y), 0.5, 0.0))

    return first, second


atan2_p = binary(
    "atan2",
    jnp.arctan2,
    lambda x, y, z: div(y, add(mul(x, x), mul(y, y))),  # d atan2(x, y)/dx = y/(x²+y²)
    lambda x, y, z: neg(div(x, add(mul(x, x), mul(y, y)))),  # d/dy = -x/(x²+y²)
)
rem_p = binary(
    "rem",
    jnp.remainder,
    _one,
    lambda x, y, z: neg(floor(div(x, y))),  # x mod y = x - floor(x/y) y
)
floor_divide_p = binary("floor_divide", jnp.floor_divide, differentiable=False)
nextafter_p = binary("nextafter", jnp.nextafter, differentiable=False)

# =============================================================================================
# Comparisons and logic (no derivative)
# =============================================================================================


def _compare(name, impl):
    p = binary(name, impl, differentiable=False)
    p.abstract_eval = _compare_aval
    return p


eq_p = _compare("eq", jnp.equal)
ne_p = _compare("ne", jnp.not_equal)
lt_p = _compare("lt", jnp.less)
le_p = _compare("le", jnp.less_equal)
gt_p = _compare("gt", jnp.greater)
ge_p = _compare("ge", jnp.greater_equal)
# (after the comparisons their derivatives use)
max_p = binary("max", jnp.maximum, *_wins(gt_p))
min_p = binary("min", jnp.minimum, *_wins(lt_p))
and_p = binary("and", jnp.logical_and, differentiable=False)
or_p = binary("or", jnp.logical_or, differentiable=False)
xor_p = binary("xor", jnp.logical_xor, differentiable=False)
not_p = unary("not", jnp.logical_not)
is_finite_p = unary("is_finite", jnp.isfinite)
is_finite_p.abstract_eval = _compare_aval
for _p in (and_p, or_p, xor_p):
    _p.abstract_eval = _compare_aval
not_p.abstract_eval = _compare_aval

# =============================================================================================
# Unary math. Each derivative is written with functrans operations: `deriv(x, out)`.
# =============================================================================================

neg_p = unary("neg", jnp.negative, _minus_one)
exp_p = unary("exp", jnp.exp, lambda x, y: y)  # exp' = exp
log_p = unary("log", jnp.log, lambda x, y: div(1, x))  # log' = 1/x
expm1_p = unary("expm1", jnp.expm1, lambda x, y: add(y, 1))  # (e^x - 1)' = e^x
log1p_p = unary("log1p", jnp.log1p, lambda x, y: div(1, add(x, 1)))
sin_p = unary("sin", jnp.sin, lambda x, y: cos(x))
cos_p = unary("cos", jnp.cos, lambda x, y: neg(sin(x)))
tan_p = unary("tan", jnp.tan, lambda x, y: add(1, mul(y, y)))  # tan' = 1 + tan²
asin_p = unary("asin", jnp.arcsin, lambda x, y: rsqrt(sub(1, mul(x, x))))
acos_p = unary("acos", jnp.arccos, lambda x, y: neg(rsqrt(sub(1, mul(x, x)))))
atan_p = unary("atan", jnp.arctan, lambda x, y: div(1, add(1, mul(x, x))))
sinh_p = unary("sinh", jnp.sinh, lambda x, y: cosh(x))
cosh_p = unary("cosh", jnp.cosh, lambda x, y: sinh(x))
tanh_p = unary("tanh", jnp.tanh, lambda x, y: sub(1, mul(y, y)))  # tanh' = 1 - tanh²
asinh_p = unary("asinh", jnp.arcsinh, lambda x, y: rsqrt(add(mul(x, x), 1)))
acosh_p = unary("acosh", jnp.arccosh, lambda x, y: rsqrt(sub(mul(x, x), 1)))
atanh_p = unary("atanh", jnp.arctanh, lambda x, y: div(1, sub(1, mul(x, x))))
sqrt_p = unary("sqrt", jnp.sqrt, lambda x, y: div(0.5, y))  # sqrt' = 1/(2 sqrt)
rsqrt_p = unary("rsqrt", jax.lax.rsqrt, lambda x, y: mul(div(y, x), -0.5))  # = -y/(2x)
logistic_p = unary("logistic", jax.nn.sigmoid, lambda x, y: mul(y, sub(1, y)))
erf_p = unary(
    "erf", jax.scipy.special.erf, lambda x, y: mul(2 / math.sqrt(math.pi), exp(neg(mul(x, x))))
)


def _abs_deriv(x, y):
    return select(ge_p.bind(x, 0), 1.0, -1.0)  # 1 at 0, as JAX


abs_p = unary("abs", jnp.abs, _abs_deriv)
_abs_real_jvp, _abs_real_vjp = abs_p.jvp, abs_p.vjp


def _abs_aval(x):
    aval = get_aval(x)
    if jnp.issubdtype(aval.dtype, jnp.complexfloating):  # |z| is real
        return ShapedArray(aval.shape, np.finfo(aval.dtype).dtype, aval.weak_type)
    return aval


abs_p.abstract_eval = _abs_aval


def _complex_sign(z, out):
    """`z / |z|`, and 0 where z = 0 (JAX's choice for the derivative of |z| there)."""
    from .complex import complex_

    zero = eq(out, 0.0)
    safe = select(zero, 1.0, out)
    unit = div(z, complex_(safe, mul(safe, 0.0)))
    return select(zero, mul(z, 0.0), unit)


def _abs_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    if not jnp.issubdtype(dtype_of(z), jnp.complexfloating):
        return _abs_real_jvp(primals, tangents)
    from .complex import conj, real

    out = abs_p.bind(z)
    return out, real(mul(conj(_complex_sign(z, out)), t))  # d|z| = Re(conj(z/|z|) dz)


def _abs_vjp(needs, ct, out, z):
    if not jnp.issubdtype(dtype_of(z), jnp.complexfloating):
        return _abs_real_vjp(needs, ct, out, z)
    from .complex import complex_, conj

    # the transpose of t -> Re(conj(s) t): a real cotangent c goes to c * conj(s)
    return (mul(complex_(ct, mul(ct, 0.0)), conj(_complex_sign(z, out))),)


abs_p.jvp, abs_p.vjp = _abs_jvp, _abs_vjp
sign_p = unary("sign", jnp.sign)
floor_p = unary("floor", jnp.floor)
ceil_p = unary("ceil", jnp.ceil)
round_p = unary("round", jnp.round)


def _integer_pow_deriv(x, y, *, n):
    if n == 0:
        return 0.0
    if n == 1:
        return 1
    return mul(n, x if n == 2 else integer_pow(x, n - 1))  # (x^n)' = n x^(n-1)


integer_pow_p = unary("integer_pow", lambda x, n: jax.lax.integer_pow(x, n), _integer_pow_deriv)

# =============================================================================================
# select, dtype conversion, stop_gradient
# =============================================================================================

select_p = Primitive("select")
select_p.impl = jnp.where


def _select_aval(pred, x, y):
    avals = [get_aval(v) for v in (pred, x, y)]
    shape = _broadcast_shapes(*(av.shape for av in avals))
    dtype, weak = result_type(tuple((av.dtype, av.weak_type) for av in avals[1:]))
    return ShapedArray(shape, dtype, weak)


def _select_jvp(primals, tangents):
    pred, x, y = primals
    _, tx, ty = tangents
    out = select(pred, x, y)
    t = select(pred, 0.0 if tx is None else tx, 0.0 if ty is None else ty)
    return out, broadcast_to(t, shape_of(out))


def _select_vjp(needs, ct, out, pred, x, y):
    return (
        None,
        unbroadcast(select(pred, ct, 0.0), shape_of(x)) if needs[1] else None,
        unbroadcast(select(pred, 0.0, ct), shape_of(y)) if needs[2] else None,
    )


select_p.abstract_eval = _select_aval
select_p.jvp = _select_jvp
select_p.vjp = _select_vjp
select_p.batch = broadcast_batcher(select_p)

convert_element_type_p = Primitive("convert_element_type")
convert_element_type_p.impl = lambda x, new_dtype: jax.lax.convert_element_type(x, new_dtype)
convert_element_type_p.abstract_eval = lambda x, new_dtype: ShapedArray(
    get_aval(x).shape, new_dtype
)


def _convert_jvp(primals, tangents, new_dtype):
    (x,), (t,) = primals, tangents
    out = convert_element_type(x, new_dtype)
    if not jnp.issubdtype(new_dtype, jnp.inexact):
        return out, None
    return out, convert_element_type(t, new_dtype)


def _convert_vjp(needs, ct, out, x, new_dtype):
    if jnp.issubdtype(dtype_of(ct), jnp.complexfloating) and not jnp.issubdtype(
        dtype_of(x), jnp.complexfloating
    ):
        from .complex import real

        ct = real(ct)  # the transpose of embedding the reals in the complex plane
    return (convert_element_type(ct, dtype_of(x)),)


convert_element_type_p.jvp = _convert_jvp
convert_element_type_p.vjp = _convert_vjp
convert_element_type_p.batch = broadcast_batcher(convert_element_type_p)

stop_gradient_p = unary("stop_gradient", lambda x: jax.lax.stop_gradient(x))

# =============================================================================================
# Broadcasting and its transpose
# =============================================================================================

broadcast_to_p = Primitive("broadcast_to")
broadcast_to_p.impl = lambda x, shape: jnp.broadcast_to(x, shape)


def _broadcast_to_aval(x, shape):
    aval = get_aval(x)
    if _broadcast_shapes(aval.shape, shape) != tuple(shape):
        raise ValueError(
            f"Cannot broadcast an array of shape {aval.shape} to shape {tuple(shape)}: "
            "sizes must match or be 1, counting from the last axis."
        )
    return ShapedArray(shape, aval.dtype, aval.weak_type)


broadcast_to_p.abstract_eval = _broadcast_to_aval
broadcast_to_p.jvp = lambda primals, tangents, shape: (
    broadcast_to(primals[0], shape),
    broadcast_to(tangents[0], shape),
)
broadcast_to_p.vjp = lambda needs, ct, out, x, shape: (unbroadcast(ct, shape_of(x)),)


def _broadcast_to_batch(args, dims, shape):
    from .structural import moveaxis, reshape

    (x,), (d,) = args, dims
    s = shape_of(x)
    per = s[:d] + s[d + 1 :]
    x = reshape(moveaxis(x, d, 0), (s[d],) + (1,) * (len(shape) - len(per)) + per)
    return broadcast_to(x, (s[d], *shape)), 0


broadcast_to_p.batch = _broadcast_to_batch


# =============================================================================================
# Operations used by rules and by `functrans.numpy`. They fold trivial literals
# (`x * 1 -> x`, `x + 0 -> x`) so that derivative graphs do not carry them.
# =============================================================================================


def _is_lit(v, value):
    return is_python_scalar(v) and v == value


def _both_literal(x, y):
    return is_python_scalar(x) and is_python_scalar(y)


def add(x, y):
    if _both_literal(x, y):
        return x + y  # literals fold in Python: no constant arrays in derivative graphs
    if _is_lit(y, 0) and not is_python_scalar(x):
        return x  # x + 0 -> x
    if _is_lit(x, 0) and not is_python_scalar(y):
        return y  # 0 + y -> y
    return add_p.bind(x, y)


def add_any(*xs):
    """Sum of same-shaped values (tangents or cotangents)."""
    out = xs[0]
    for x in xs[1:]:
        out = add_p.bind(out, x)
    return out


def sub(x, y):
    if _both_literal(x, y):
        return x - y
    if _is_lit(y, 0) and not is_python_scalar(x):
        return x  # x - 0 -> x
    if _is_lit(x, 0) and not is_python_scalar(y):
        return neg(y)  # 0 - y -> -y
    return sub_p.bind(x, y)


def mul(x, y):
    if _both_literal(x, y):
        return x * y
    if _is_lit(y, 1) and not is_python_scalar(x):
        return x  # x * 1 -> x
    if _is_lit(x, 1) and not is_python_scalar(y):
        return y  # 1 * y -> y
    if _is_lit(y, -1) and not is_python_scalar(x):
        return neg(x)  # x * -1 -> -x
    if _is_lit(x, -1) and not is_python_scalar(y):
        return neg(y)
    return mul_p.bind(x, y)


def div(x, y):
    if _both_literal(x, y) and y != 0:
        return x / y
    if _is_lit(y, 1) and not is_python_scalar(x):
        return x  # x / 1 -> x
    return div_p.bind(x, y)


def neg(x):
    if is_python_scalar(x):
        return -x
    return neg_p.bind(x)


def pow(x, y):
    return pow_p.bind(x, y)


def integer_pow(x, n):
    if n == 1:
        return x
    return integer_pow_p.bind(x, n=int(n))


def exp(x):
    return exp_p.bind(x)


def log(x):
    return log_p.bind(x)


def sin(x):
    return sin_p.bind(x)


def cos(x):
    return cos_p.bind(x)


def sinh(x):
    return sinh_p.bind(x)


def cosh(x):
    return cosh_p.bind(x)


def tanh(x):
    return tanh_p.bind(x)


def sqrt(x):
    return sqrt_p.bind(x)


def rsqrt(x):
    return rsqrt_p.bind(x)


def sign(x):
    return sign_p.bind(x)


def floor(x):
    return floor_p.bind(x)


def eq(x, y):
    return eq_p.bind(x, y)


def select(pred, x, y):
    return select_p.bind(pred, x, y)


def convert_element_type(x, dtype):
    dtype = np.dtype(dtype)
    if dtype_of(x) == dtype and not is_python_scalar(x):
        return x
    return convert_element_type_p.bind(x, new_dtype=dtype)


def stop_gradient(x):
    return stop_gradient_p.bind(x)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if shape_of(x) == shape and not is_python_scalar(x):
        return x
    return broadcast_to_p.bind(x, shape=shape)


def unbroadcast(ct, shape):
    """Sum `ct` over the axes along which a value of `shape` was broadcast (VJP of it)."""
    from .reductions import reduce_sum
    from .structural import reshape

    shape = tuple(shape)
    cshape = shape_of(ct)
    if cshape == shape:
        return ct
    if is_python_scalar(ct):
        return broadcast_to(ct, shape)
    lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and cshape[lead + i] != 1
    )
    out = reduce_sum(ct, axes)
    return reshape(out, shape)
