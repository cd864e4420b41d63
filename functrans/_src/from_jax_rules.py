"""The rule table of `ft.from_jax`: one interpretation per JAX primitive.

A rule receives the operands of one jaxpr equation (functrans values, JAX arrays or literal
NumPy scalars) and the equation's params as keywords, exactly as JAX's own `bind` would, and
returns the result (a list for primitives with several results) computed with functrans
operations. Because every rule is written with functrans primitives, whatever functrans does
to them (`grad` at any order, `vmap`, `make_graph`, Taylor mode) applies to the JAX program.

Rules for primitives that hold jaxprs (`jit`, `custom_jvp_call`, `cond`, ...) live in
`from_jax.py`, next to the interpreter they call back into.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .core import Tracer, get_aval, is_inexact
from .prims import bits
from .prims import complex as cx
from .prims import elementwise as ew
from .prims import fft as fftm
from .prims import indexing as ix
from .prims import linalg as la
from .prims import reductions as red
from .prims import sorting as so
from .prims import special as sp
from .prims import structural as st

RULES: dict = {}


def register(*names):
    """Register the decorated function as the rule of the JAX primitives `names`."""

    def wrap(rule):
        for name in names:
            RULES[name] = rule
        return rule

    return wrap


def _fnp():
    from functrans import numpy as fnp

    return fnp


def _dtype(x):
    return get_aval(x).dtype


def _shape(x):
    return get_aval(x).shape


# =============================================================================================
# Elementwise: one functrans primitive each
# =============================================================================================

_SAME_NAME = [
    "add", "sub", "mul", "pow", "max", "min", "atan2", "nextafter",
    "eq", "ne", "lt", "le", "gt", "ge", "is_finite",
    "neg", "exp", "log", "expm1", "log1p", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "logistic", "erf",
    "abs", "sign", "floor", "ceil", "stop_gradient",
]  # fmt: skip


def _same_name_rule(prim):
    return lambda *args, **params: prim.bind(*args)


for _name in _SAME_NAME:
    register(_name)(_same_name_rule(ew.__dict__[f"{_name}_p"]))

_SPECIAL = ["lgamma", "digamma", "polygamma", "erf_inv", "igamma", "igammac", "igamma_grad_a",
            "zeta", "bessel_i0e", "bessel_i1e"]  # fmt: skip

for _name in _SPECIAL:
    register(_name)(_same_name_rule(sp.__dict__[f"{_name}_p"]))

for _name in ["shift_left", "shift_right_arithmetic", "shift_right_logical", "population_count",
              "clz"]:  # fmt: skip
    register(_name)(_same_name_rule(bits.__dict__[f"{_name}_p"]))


@register("bitcast_convert_type")
def _bitcast_convert_type(x, *, new_dtype):
    return bits.bitcast_convert_type(x, new_dtype)


def _logical_or_bitwise(prim, bitwise):
    # JAX's `and`/`or`/`xor`/`not` are bitwise on integers; functrans' are logical, so
    # integers take the bitwise primitives (integer results: no derivative, as in JAX).
    def rule(*args):
        if _dtype(args[0]) == np.bool_:
            return prim.bind(*args)
        return bitwise.bind(*args)

    return rule


register("and")(_logical_or_bitwise(ew.and_p, bits.bitwise_and_p))
register("or")(_logical_or_bitwise(ew.or_p, bits.bitwise_or_p))
register("xor")(_logical_or_bitwise(ew.xor_p, bits.bitwise_xor_p))
register("not")(_logical_or_bitwise(ew.not_p, bits.bitwise_not_p))


def _is_int(x):
    return np.issubdtype(_dtype(x), np.integer)


@register("div")
def _div(x, y):
    if _is_int(x):  # rounds toward zero: sign(x y) floor(|x| / |y|)
        q = ew.floor_divide_p.bind(ew.abs_p.bind(x), ew.abs_p.bind(y))
        return ew.mul(ew.mul(ew.sign(x), ew.sign(y)), q)
    return ew.div(x, y)


@register("rem")
def _rem(x, y):
    # JAX's `rem` takes the dividend's sign (C's fmod); functrans' `rem` is Python's `%`,
    # which agrees on magnitudes: fmod(x, y) = sign(x) (|x| % |y|).
    return ew.mul(ew.sign(x), ew.rem_p.bind(ew.abs_p.bind(x), ew.abs_p.bind(y)))


@register("add_any")
def _add_any(x, y):
    return ew.add_any(x, y)


@register("integer_pow")
def _integer_pow(x, *, y):
    return ew.integer_pow(x, int(y))


@register("square")
def _square(x):
    return ew.integer_pow(x, 2)


@register("exp2")
def _exp2(x, **params):
    return ew.exp(ew.mul(x, np.asarray(math.log(2), _dtype(x))))


@register("cbrt")
def _cbrt(x, **params):
    third = np.asarray(1 / 3, _dtype(x))
    return ew.mul(ew.sign(x), ew.pow(ew.abs_p.bind(x), third))


@register("erfc")
def _erfc(x, **params):
    return ew.sub(np.asarray(1, _dtype(x)), ew.erf_p.bind(x))


@register("round")
def _round(x, *, rounding_method=0):
    if int(rounding_method) == 0:  # away from zero: sign(x) * floor(|x| + 1/2)
        half = np.asarray(0.5, _dtype(x))
        return ew.mul(ew.sign(x), ew.floor(ew.add(ew.abs_p.bind(x), half)))
    return ew.round_p.bind(x)  # to nearest even, as `jnp.round`


@register("copy", "copy_p", "optimization_barrier", "reduce_precision")
def _identity(*args, **params):
    return args[0] if len(args) == 1 else list(args)


@register("convert_element_type")
def _convert(x, *, new_dtype, **params):
    if isinstance(x, Tracer):
        return ew.convert_element_type(x, new_dtype)
    return ew.convert_element_type(jnp.asarray(x), new_dtype)


@register("select_n")
def _select_n(which, *cases):
    if len(cases) == 1:
        return cases[0]
    if _dtype(which) == np.bool_:
        return ew.select(which, cases[1], cases[0])
    # An integer selector picks case `which`: a chain of binary selects.
    out = cases[0]
    for i, case in enumerate(cases[1:], start=1):
        out = ew.select(ew.eq_p.bind(which, np.asarray(i, _dtype(which))), case, out)
    return out


@register("clamp")
def _clamp(lo, x, hi):
    return ew.min_p.bind(ew.max_p.bind(x, lo), hi)


# =============================================================================================
# Shapes
# =============================================================================================


@register("broadcast_in_dim")
def _broadcast_in_dim(x, *dyn, shape, broadcast_dimensions, **params):
    if dyn:
        raise NotImplementedError("`ft.from_jax` does not support dynamic shapes.")
    shape = tuple(int(d) for d in shape)
    keep = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        keep[int(d)] = _shape(x)[i]
    x = x if isinstance(x, Tracer) else jnp.asarray(x)
    return ew.broadcast_to(st.reshape(x, tuple(keep)), shape)


@register("reshape")
def _reshape(x, *dyn, new_sizes, dimensions=None, **params):
    if dimensions is not None:
        x = st.transpose(x, tuple(int(d) for d in dimensions))
    return st.reshape(x, tuple(int(d) for d in new_sizes))


@register("squeeze")
def _squeeze(x, *, dimensions):
    return st.reshape(x, tuple(d for i, d in enumerate(_shape(x)) if i not in set(dimensions)))


@register("expand_dims")
def _expand_dims(x, *, dimensions):
    return _fnp().expand_dims(x, tuple(dimensions))


@register("transpose")
def _transpose(x, *, permutation):
    return st.transpose(x, tuple(int(p) for p in permutation))


@register("rev")
def _rev(x, *, dimensions):
    return _fnp().flip(x, tuple(dimensions)) if dimensions else x


@register("concatenate")
def _concatenate(*xs, dimension):
    return st.concatenate(list(xs), int(dimension))


@register("stack")
def _stack(*xs, axis):
    return _fnp().stack(list(xs), int(axis))


@register("tile")
def _tile(x, *, reps):
    return _fnp().tile(x, tuple(int(r) for r in reps))


@register("split")
def _split(x, *, sizes, axis):
    bounds = np.cumsum([0, *sizes])
    return [ix.slice_in_dim(x, int(a), int(b), int(axis)) for a, b in itertools.pairwise(bounds)]


@register("pad")
def _pad(x, padding_value, *, padding_config):
    config = [tuple(int(v) for v in c) for c in padding_config]
    # Negative low/high padding crops: pad the positive part, then slice the rest away.
    positive = [(max(lo, 0), max(hi, 0), i) for lo, hi, i in config]
    if not isinstance(padding_value, (np.ndarray, np.generic)):
        # A traced padding value: pad with zeros and select it where the padding went.
        mask = st.pad(jnp.zeros(_shape(x), bool), True, positive)
        out = ew.select(mask, padding_value, st.pad(x, 0, positive))
    else:
        out = st.pad(x, np.asarray(padding_value).item(), positive)
    shape = _shape(out)
    starts = [max(-lo, 0) for lo, _, _ in config]
    limits = [d - max(-hi, 0) for d, (_, hi, _) in zip(shape, config)]
    return ix.static_slice(out, starts, limits)


@register("slice")
def _slice(x, *, start_indices, limit_indices, strides=None):
    return ix.static_slice(x, start_indices, limit_indices, strides)


@register("iota")
def _iota(*dyn, dtype, shape, dimension, **params):
    return jax.lax.broadcasted_iota(dtype, tuple(shape), int(dimension))


# =============================================================================================
# Reductions and scans
# =============================================================================================


def _reduction(fn):
    return lambda x, *, axes, **params: fn(x, tuple(int(a) for a in axes)) if axes else x


register("reduce_sum")(_reduction(red.reduce_sum))
register("reduce_max")(_reduction(red.reduce_max))
register("reduce_min")(_reduction(red.reduce_min))
register("reduce_prod")(_reduction(red.reduce_prod))
register("reduce_and")(lambda x, *, axes: _fnp().all(x, axis=tuple(axes)))
register("reduce_or")(lambda x, *, axes: _fnp().any(x, axis=tuple(axes)))


def _arg_rule(prim):
    def rule(x, *, axes, index_dtype):
        (axis,) = axes
        return prim.bind(x, axis=int(axis), index_dtype=np.dtype(index_dtype))

    return rule


RULES["argmax"] = _arg_rule(red.argmax_p)
RULES["argmin"] = _arg_rule(red.argmin_p)


@register("cumsum")
def _cumsum(x, *, axis, reverse=False):
    return red.cumsum(x, int(axis), bool(reverse))


def _masked_scan(reduce, fill_with_own):
    """A cumulative `reduce` as one reduction over a masked square: differentiable as is.

    Entry `(i, j)` of the square holds `x[j]` for `j <= i`; the others hold a neutral value:
    1 for products, `x[i]` itself for max/min (which keeps infinities out of the graph).
    """

    def rule(x, *, axis, reverse=False):
        fnp = _fnp()
        x = fnp.moveaxis(x, int(axis), -1)
        x = fnp.flip(x, -1) if reverse else x
        n = _shape(x)[-1]
        keep = np.arange(n)[:, None] >= np.arange(n)  # keep[i, j]: j <= i
        other = x[..., :, None] if fill_with_own else np.asarray(1, _dtype(x))
        out = reduce(fnp.where(keep, x[..., None, :], other))
        return fnp.moveaxis(fnp.flip(out, -1) if reverse else out, -1, int(axis))

    return rule


register("cumprod")(_masked_scan(lambda v: _fnp().prod(v, axis=-1), False))
register("cummax")(_masked_scan(lambda v: _fnp().max(v, axis=-1), True))
register("cummin")(_masked_scan(lambda v: _fnp().min(v, axis=-1), True))


@register("cumlogsumexp")
def _cumlogsumexp(x, *, axis, reverse=False):
    # log(cumsum(exp(x - m))) + m with one shift for the whole axis keeps it finite.
    m = red.reduce_max(ew.stop_gradient(x), (int(axis),))  # a constant shift
    m = red.expand_back(m, _shape(x), (int(axis),))
    return ew.add(ew.log(red.cumsum(ew.exp(ew.sub(x, m)), int(axis), bool(reverse))), m)


@register("dot_general")
def _dot_general(x, y, *, dimension_numbers, precision=None, preferred_element_type=None, **params):
    (xc, yc), (xb, yb) = dimension_numbers
    dims = ((tuple(map(int, xc)), tuple(map(int, yc))), (tuple(map(int, xb)), tuple(map(int, yb))))
    # JAX names the output dtype in every product; it is a parameter here only where it differs
    # from the operands' (bfloat16 or int8 operands accumulated in float32 / int32).
    pet = preferred_element_type
    same = pet is None or (_dtype(x) == _dtype(y) == np.dtype(pet))
    return la.dot_general(x, y, dims, precision, None if same else pet)


_CONV_PARAMS = (
    "window_strides", "padding", "lhs_dilation", "rhs_dilation", "dimension_numbers",
    "feature_group_count", "batch_group_count", "precision", "preferred_element_type",
)  # fmt: skip


@register("conv_general_dilated")
def _conv(lhs, rhs, **params):
    from .prims.conv import conv_general_dilated

    return conv_general_dilated(lhs, rhs, **{k: params[k] for k in _CONV_PARAMS if k in params})


@register("cholesky")
def _cholesky(x, **params):
    return la.cholesky(x)


@register("triangular_solve")
def _triangular_solve(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    if unit_diagonal:  # the diagonal of `a` is taken to be ones
        eye = np.eye(_shape(a)[-1], dtype=bool)
        a = ew.select(eye, np.asarray(1, _dtype(a)), a)
    if left_side:
        return la.triangular_solve(a, b, lower, transpose_a)
    # x op(a) = b  <=>  op(a)^T x^T = b^T
    return la.mT(la.triangular_solve(a, la.mT(b), lower, not transpose_a))


# =============================================================================================
# Windows: `reduce_window_*` (pooling) as a combination of strided slices
# =============================================================================================


def _reduce_window(x, init, combine, window_dimensions, window_strides, padding,
                   base_dilation, window_dilation):  # fmt: skip
    config = [(lo, hi, b - 1) for (lo, hi), b in zip(padding, base_dilation)]
    if any(c != (0, 0, 0) for c in config):
        x = st.pad(x, init, config)
    shape = _shape(x)
    out_shape = [
        (d - (w - 1) * wd - 1) // s + 1
        for d, w, s, wd in zip(shape, window_dimensions, window_strides, window_dilation)
    ]
    out = None
    for offsets in itertools.product(*(range(w) for w in window_dimensions)):
        starts = [o * wd for o, wd in zip(offsets, window_dilation)]
        limits = [a + (n - 1) * s + 1 for a, n, s in zip(starts, out_shape, window_strides)]
        piece = ix.static_slice(x, starts, limits, list(window_strides))
        out = piece if out is None else combine(out, piece)
    return out


def _window_rule(init_of, combine):
    def rule(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
        return _reduce_window(x, init_of(_dtype(x)), combine, window_dimensions, window_strides,
                              padding, base_dilation, window_dilation)  # fmt: skip

    return rule


def _lowest(dtype):
    return -np.inf if is_inexact(dtype) else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if is_inexact(dtype) else np.iinfo(dtype).max


register("reduce_window_sum")(_window_rule(lambda dt: 0, ew.add))
register("reduce_window_max")(_window_rule(_lowest, ew.max_p.bind))
register("reduce_window_min")(_window_rule(_highest, ew.min_p.bind))

# =============================================================================================
# Gather and scatter: JAX's general dimension numbers as NumPy advanced indexing
# =============================================================================================


def _clamp_index(i, lo, hi):
    i = ew.max_p.bind(i, np.asarray(lo, _dtype(i)))
    return ew.min_p.bind(i, np.asarray(hi, _dtype(i)))


def _index_arrays(x_shape, starts, sizes, window_pos, batch_pos, out_rank, clip):
    """The NumPy advanced index that reads JAX's gather windows from an operand.

    Args:
      x_shape: the operand's shape.
      starts: per operand axis, the start of its window: `None` (zero) or an integer array
        over the batch axes.
      sizes: per operand axis, the window size.
      window_pos: per operand axis, its position in the result or `None` when collapsed.
      batch_pos: the result positions of the batch axes, in order.
      out_rank: the rank of the result.
      clip: whether starts are clamped into range (they always are, as JAX does).

    Returns:
      `(axes, arrays, full)`: the operand axes indexed by `arrays` (each of rank `out_rank`,
      broadcastable), and the axes read whole, in operand order.
    """
    axes, arrays, full = [], [], []
    for d, (start, size, pos) in enumerate(zip(starts, sizes, window_pos)):
        if start is None and size == x_shape[d] and pos is not None:
            full.append(d)
            continue
        shape = [1] * out_rank
        idx = None
        if start is not None:
            if clip:
                start = _clamp_index(start, 0, x_shape[d] - size)
            bshape = list(shape)
            for p, n in zip(batch_pos, _shape(start)):
                bshape[p] = n
            idx = st.reshape(start, tuple(bshape))
        if pos is not None and size > 1:
            wshape = list(shape)
            wshape[pos] = size
            window = jnp.arange(size, dtype=_dtype(idx) if idx is not None else jnp.int32)
            window = window.reshape(wshape)
            idx = window if idx is None else ew.add(idx, window)
        if idx is None:
            idx = jnp.zeros(shape, jnp.int32)
        axes.append(d)
        arrays.append(idx)
    return axes, arrays, full


def _indexed_layout(axes, arrays, full, out_shape, window_pos):
    """Transposes and indexer that turn a windowed read into one NumPy gather.

    The operand is transposed so that the indexed axes come first and the axes read whole
    come last; indexing it with arrays of the result's shape less the whole axes gives
    `rest + whole` axes, which `perm` puts into the result's order.
    """
    full_pos = [window_pos[d] for d in full]
    rest = [p for p in range(len(out_shape)) if p not in full_pos]
    rest_shape = tuple(out_shape[p] for p in rest)
    arrays = [
        ew.broadcast_to(st.reshape(a, tuple(_shape(a)[p] for p in rest)), rest_shape)
        for a in arrays
    ]
    order = {p: i for i, p in enumerate(rest)} | {p: len(rest) + i for i, p in enumerate(full_pos)}
    perm = tuple(order[p] for p in range(len(out_shape)))
    indexer = tuple(("a", k) for k in range(len(arrays)))
    return tuple(axes + full), arrays, indexer, perm


def _starts_from_indices(indices, x_rank, index_map, operand_batching, indices_batching):
    starts = [None] * x_rank
    batch_shape = _shape(indices)[:-1]
    for k, d in enumerate(index_map):
        column = ix.static_slice(indices, [0] * len(batch_shape) + [k], [*batch_shape, k + 1])
        starts[d] = st.reshape(column, batch_shape)
    for d, b in zip(operand_batching, indices_batching):
        starts[d] = jax.lax.broadcasted_iota(np.int32, batch_shape, int(b))
    return starts


def _mode_name(mode):
    return getattr(mode, "name", str(mode)).upper()


def _fill_mask(starts, sizes, x_shape):
    ok = None
    for d, s in enumerate(starts):
        if s is None:
            continue
        hi = np.asarray(x_shape[d] - sizes[d], _dtype(s))
        good = ew.and_p.bind(ew.ge_p.bind(s, np.asarray(0, _dtype(s))), ew.le_p.bind(s, hi))
        ok = good if ok is None else ew.and_p.bind(ok, good)
    return ok


def _gather_windows(x, starts, sizes, window_pos, batch_pos, out_shape):
    x_shape = _shape(x)
    axes, arrays, full = _index_arrays(x_shape, starts, sizes, window_pos, batch_pos,
                                       len(out_shape), clip=True)  # fmt: skip
    if not arrays:
        return st.reshape(x, out_shape)
    order, arrays, indexer, perm = _indexed_layout(axes, arrays, full, out_shape, window_pos)
    return st.transpose(ix.gather(st.transpose(x, order), arrays, indexer), perm)


@register("gather")
def _gather(x, indices, *, dimension_numbers, slice_sizes, mode, fill_value=None, **params):
    dn = dimension_numbers
    x_rank = len(_shape(x))
    batch_shape = _shape(indices)[:-1]
    out_rank = len(batch_shape) + len(dn.offset_dims)
    no_window = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    window_dims = [d for d in range(x_rank) if d not in no_window]
    window_pos = [None] * x_rank
    for d, p in zip(window_dims, dn.offset_dims):
        window_pos[d] = int(p)
    batch_pos = [p for p in range(out_rank) if p not in set(dn.offset_dims)]
    out_shape = [0] * out_rank
    for p, n in zip(batch_pos, batch_shape):
        out_shape[p] = n
    for d in window_dims:
        out_shape[window_pos[d]] = slice_sizes[d]
    starts = _starts_from_indices(indices, x_rank, dn.start_index_map, dn.operand_batching_dims,
                                  dn.start_indices_batching_dims)  # fmt: skip
    out = _gather_windows(x, starts, list(slice_sizes), window_pos, batch_pos, tuple(out_shape))
    if "FILL" in _mode_name(mode):
        ok = _fill_mask(starts, slice_sizes, _shape(x))
        if ok is not None:
            ok = st.reshape(ok, tuple(n if p in batch_pos else 1 for p, n in enumerate(out_shape)))
            out = ew.select(ok, out, _gather_fill(_dtype(x), fill_value))
    return out


def _gather_fill(dtype, fill_value):
    if fill_value is not None:
        return np.asarray(fill_value, dtype)
    if is_inexact(dtype):
        return np.asarray(np.nan, dtype)
    if dtype == np.bool_:
        return np.asarray(True)
    return np.asarray(np.iinfo(dtype).min if np.issubdtype(dtype, np.signedinteger)
                      else np.iinfo(dtype).max, dtype)  # fmt: skip


@register("dynamic_slice")
def _dynamic_slice(x, *starts, slice_sizes):
    shape = tuple(int(s) for s in slice_sizes)
    return _gather_windows(x, list(starts), list(shape), list(range(len(shape))), [], shape)


def _scatter_windows(x, updates, starts, sizes, window_pos, batch_pos, combine, mask=None):
    """`x` with each window of `updates` written (`combine`: "add" or "set") at its start."""
    x_shape = _shape(x)
    u_shape = _shape(updates)
    axes, arrays, full = _index_arrays(x_shape, starts, sizes, window_pos, batch_pos,
                                       len(u_shape), clip=True)  # fmt: skip
    if mask is not None:
        mask = st.reshape(mask, tuple(n if p in batch_pos else 1 for p, n in enumerate(u_shape)))
    if not arrays:
        new = st.reshape(updates, x_shape)
        if mask is not None:
            new = ew.select(mask, new, 0 if combine == "add" else x)
        return ew.add(x, new) if combine == "add" else new
    order, arrays, indexer, perm = _indexed_layout(axes, arrays, full, u_shape, window_pos)
    inv = tuple(int(i) for i in np.argsort(perm))
    xt = st.transpose(x, order)
    if mask is not None:
        current = np.asarray(0, _dtype(x)) if combine == "add" else None
        if current is None:
            current = st.transpose(ix.gather(xt, arrays, indexer), perm)
        updates = ew.select(mask, updates, current)
    ut = st.transpose(updates, inv)
    if combine == "add":
        out = ix.scatter_add(xt, ut, arrays, indexer)
    else:
        out = ix.scatter(xt, ut, arrays, indexer)
    return st.transpose(out, tuple(int(i) for i in np.argsort(order)))


def _scatter_rule(combine):
    def rule(x, indices, updates, *, dimension_numbers, mode, **params):
        dn = dimension_numbers
        x_rank = len(_shape(x))
        u_rank = len(_shape(updates))
        no_window = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
        window_dims = [d for d in range(x_rank) if d not in no_window]
        window_pos = [None] * x_rank
        sizes = [1] * x_rank
        for d, p in zip(window_dims, dn.update_window_dims):
            window_pos[d] = int(p)
            sizes[d] = _shape(updates)[p]
        batch_pos = [p for p in range(u_rank) if p not in set(dn.update_window_dims)]
        starts = _starts_from_indices(
            indices, x_rank, dn.scatter_dims_to_operand_dims, dn.operand_batching_dims,
            dn.scatter_indices_batching_dims,
        )  # fmt: skip
        mask = _fill_mask(starts, sizes, _shape(x)) if "FILL" in _mode_name(mode) else None
        return _scatter_windows(x, updates, starts, sizes, window_pos, batch_pos, combine, mask)

    return rule


register("scatter-add", "scatter_add")(_scatter_rule("add"))
register("scatter")(_scatter_rule("set"))
_scatter_set = _scatter_rule("set")


@register("scatter-mul", "scatter_mul")
def _scatter_mul(x, indices, updates, **params):
    # x * (ones with the updates written in): exact when no index repeats, which is checked
    # whenever the indices are concrete.
    if not isinstance(indices, (Tracer, jax.core.Tracer)):
        rows = np.asarray(indices).reshape(-1, np.shape(indices)[-1])
        if len(np.unique(rows, axis=0)) != len(rows):
            raise NotImplementedError(
                "`ft.from_jax` interprets `scatter-mul` (`x.at[idx].multiply(y)`) only for "
                f"indices without repeats, got repeated indices {rows.tolist()}. Multiply by a "
                "product computed per index instead."
            )
    ones = jnp.ones(_shape(x), _dtype(x))
    return ew.mul(x, _scatter_set(ones, indices, updates, **params))


@register("dynamic_update_slice")
def _dynamic_update_slice(x, update, *starts):
    sizes = list(_shape(update))
    return _scatter_windows(x, update, list(starts), sizes, list(range(len(sizes))), [], "set")


# =============================================================================================
# Sorting: indices are primitives without derivative, values are gathered by them
# =============================================================================================


@register("sort")
def _sort(*operands, dimension, is_stable, num_keys):
    return so.sort(list(operands), dimension, is_stable, num_keys)


@register("top_k")
def _top_k(x, *, k, axis=-1, **params):
    last = len(_shape(x)) - 1
    axis = axis % (last + 1)
    if axis != last:
        x = st.moveaxis(x, axis, last)
    values, indices = so.top_k(x, k)
    if axis != last:
        values, indices = st.moveaxis(values, last, axis), st.moveaxis(indices, last, axis)
    return [values, indices]


register("lt_to")(_same_name_rule(so.lt_to_p))
register("le_to")(_same_name_rule(so.le_to_p))


@register("unstack")
def _unstack(x, *, axis):
    n = _shape(x)[axis]
    return [ix.getitem(x, (slice(None),) * axis + (i,)) for i in range(n)]


@register("lu")
def _lu(a):
    return list(la.lu(a))


@register("lu_pivots_to_permutation")
def _lu_pivots_to_permutation(pivots, *, permutation_size):
    return la.lu_pivots_to_permutation_p.bind(pivots, permutation_size=permutation_size)


@register("device_put")
def _device_put(*xs, **params):
    # Placement is `jax.jit`'s business once the program is compiled; values pass through.
    return list(xs)


@register("eigh")
def _eigh(a, *, lower=True, sort_eigenvalues=True, subset_by_index=None, **params):
    if not sort_eigenvalues or subset_by_index not in (None, (0, _shape(a)[-1]), (0, -1)):
        raise NotImplementedError(
            "`ft.from_jax` supports `eigh` with sorted eigenvalues and no `subset_by_index`, "
            f"got sort_eigenvalues={sort_eigenvalues}, subset_by_index={subset_by_index}."
        )
    return list(la.eigh(a, lower))


# =============================================================================================
# Complex numbers and FFTs
# =============================================================================================


@register("real")
def _real(x):
    return cx.real(x)


@register("imag")
def _imag(x):
    return cx.imag(x)


@register("conj")
def _conj(x, **params):
    return cx.conj(x)


@register("complex")
def _complex(x, y):
    return cx.complex_(x, y)


@register("fft")
def _fft(x, *, fft_type, fft_lengths):
    return fftm.fft(x, fft_type, fft_lengths)


@register("svd")
def _svd(a, *, full_matrices, compute_uv, subset_by_index=None, **params):
    m, n = _shape(a)[-2:]
    if subset_by_index not in (None, (0, min(m, n))) or (compute_uv and full_matrices and m != n):
        raise NotImplementedError(
            "`ft.from_jax` supports `svd` with `full_matrices=False` (or square matrices) and no "
            "`subset_by_index`; use `jnp.linalg.svd(a, full_matrices=False)`."
        )
    return list(la.svd(a, compute_uv))


@register("qr")
def _qr(a, *, full_matrices, pivoting=False, **params):
    m, n = _shape(a)[-2:]
    if pivoting or (full_matrices and m > n):
        raise NotImplementedError(
            "`ft.from_jax` supports `qr` in reduced mode without pivoting; use "
            '`jnp.linalg.qr(a, mode="reduced")`.'
        )
    return list(la.qr(a))


@register("eig")
def _eig(a, *, compute_left_eigenvectors, compute_right_eigenvectors, enable_eigvec_derivs=False,
         **params):  # fmt: skip
    if compute_left_eigenvectors or enable_eigvec_derivs:
        raise NotImplementedError(
            "`ft.from_jax` supports `eig` with right eigenvectors only and without "
            "`enable_eigvec_derivs` (eigenvalues are differentiable, eigenvectors are not)."
        )
    return list(la.eig(a, compute_right_eigenvectors))


@register("mulhi")
def _mulhi(x, y):
    return bits.mulhi_p.bind(x, y)


@register("scaled_dot")
def _scaled_dot(*args, dimension_numbers, preferred_element_type=None, **params):
    """`(lhs * lhs_scale) @ (rhs * rhs_scale)`: each scale repeated along the contracting
    axes over its subchannels, in float32, then cast (differentiable, unlike JAX's)."""
    if len(args) not in (2, 4):
        raise NotImplementedError(
            "`ft.from_jax` supports `scaled_dot` with both scales or neither, got "
            f"{len(args) - 2} scale operand(s)."
        )
    (xc, yc), _ = dimension_numbers
    out_dtype = np.dtype(preferred_element_type or np.float32)

    def dequantize(x, scale, contract):
        x = ew.convert_element_type(x, np.float32)
        if scale is None:
            return x
        scale = ew.convert_element_type(scale, np.float32)
        shape, sshape = _shape(x), _shape(scale)
        for d in sorted(int(c) for c in contract):
            ratio = shape[d] // sshape[d]
            if ratio > 1:  # repeat each scale over its subchannel
                grown = (*sshape[: d + 1], ratio, *sshape[d + 1 :])
                scale = st.reshape(scale, (*sshape[: d + 1], 1, *sshape[d + 1 :]))
                scale = ew.broadcast_to(scale, grown)
                sshape = (*sshape[:d], sshape[d] * ratio, *sshape[d + 1 :])
                scale = st.reshape(scale, sshape)
        return ew.mul(x, scale)

    lhs, rhs = args[:2]
    lhs_scale, rhs_scale = (args[2], args[3]) if len(args) == 4 else (None, None)
    out = _dot_general(dequantize(lhs, lhs_scale, xc), dequantize(rhs, rhs_scale, yc),
                       dimension_numbers=dimension_numbers)  # fmt: skip
    return ew.convert_element_type(out, out_dtype) if _dtype(out) != out_dtype else out
