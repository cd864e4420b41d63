"""Convolutions: the `conv_general_dilated` primitive, with `conv` built on it.

A convolution is bilinear in its two operands, and the transpose with respect to either one
is again a convolution with rearranged parameters: the input's cotangent convolves the output
cotangent with the spatially reversed kernel (strides and input dilation swap roles), and the
kernel's cotangent convolves the input with the output cotangent (strides become the kernel
dilation). Grouped convolutions map onto each other: the kernel transpose of a
`feature_group_count` convolution is a `batch_group_count` one and back. Since every rule
binds `conv_general_dilated` again, derivatives of any order stay convolutions.

Parameters are stored normalised and hashable: explicit `(low, high)` padding pairs, tuples
of strides and dilations, and a `jax.lax.ConvDimensionNumbers` whose three specs list the
batch axis, the feature axis and then the spatial axes of each operand (the *canonical*
order used by all the index algebra below).
"""

from __future__ import annotations

import functools
import operator

import jax
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import add_any, convert_element_type, dtype_of, shape_of
from .indexing import gather
from .structural import moveaxis, reshape

ConvDimensionNumbers = jax.lax.ConvDimensionNumbers

# =============================================================================================
# conv_general_dilated(lhs, rhs) with the parameters of `jax.lax.conv_general_dilated`
# =============================================================================================

conv_general_dilated_p = Primitive("conv_general_dilated")


def _conv_impl(lhs, rhs, **params):
    return jax.lax.conv_general_dilated(lhs, rhs, **params)


conv_general_dilated_p.impl = _conv_impl


def _dilate(size, factor):
    """The size of an axis of `size` elements with `factor - 1` holes between neighbours."""
    return 0 if size == 0 else 1 + factor * (size - 1)


def _spatial(shape, spec):
    return [shape[i] for i in spec[2:]]


def _out_dtype(lhs_aval, preferred_element_type):
    return lhs_aval.dtype if preferred_element_type is None else preferred_element_type


def _conv_aval(
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    feature_group_count,
    batch_group_count,
    precision,
    preferred_element_type,
):
    # The operands were checked against JAX when the public function bound the primitive
    # (and the rules only bind consistent shapes), so plain index arithmetic suffices here.
    la, ra = get_aval(lhs), get_aval(rhs)
    ls, rs, os = dimension_numbers
    out_spatial = []
    for n, k, s, (lo, hi), ld, rd in zip(
        _spatial(la.shape, ls),
        _spatial(ra.shape, rs),
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
    ):
        padded = _dilate(n, ld) + lo + hi
        window = _dilate(k, rd)
        out_spatial.append(0 if padded < window else (padded - window) // s + 1)
    canonical = [la.shape[ls[0]] // batch_group_count, ra.shape[rs[0]], *out_spatial]
    shape = [0] * len(canonical)
    for size, axis in zip(canonical, os):
        shape[axis] = size
    return ShapedArray(shape, _out_dtype(la, preferred_element_type))


conv_general_dilated_p.abstract_eval = _conv_aval


# ---------------------------------------------------------------------------------------------
# Axis surgery shared by the transposes and the batching rule
# ---------------------------------------------------------------------------------------------


def _split_axis(x, axis, major):
    """Split axis `axis` of `x` into `(major, size // major)`, in place."""
    shape = shape_of(x)
    return reshape(x, (*shape[:axis], major, shape[axis] // major, *shape[axis + 1 :]))


def _merge_axis(x, src, dst):
    """Fold axis `src` of `x` into axis `dst` (counted once `src` is removed), `src` major."""
    shape = shape_of(x)
    rest = [d for i, d in enumerate(shape) if i != src]
    rest[dst] *= shape[src]
    return reshape(moveaxis(x, src, dst), rest)


def _reverse_spatial(x, spec):
    """`x` read backwards along its spatial axes: correlation with it is convolution."""
    spatial = set(spec[2:])
    if all(shape_of(x)[i] <= 1 for i in spatial):
        return x
    full = ("s", None, None, None)
    return gather(x, [], tuple(("s", None, None, -1) if i in spatial else full
                               for i in range(len(shape_of(x)))))  # fmt: skip


def _swap_first(spec):
    return (spec[1], spec[0], *spec[2:])


def _as_dtype(x, dtype):
    return x if dtype_of(x) == dtype else convert_element_type(x, dtype)


# ---------------------------------------------------------------------------------------------
# JVP: bilinear
# ---------------------------------------------------------------------------------------------


def _conv_jvp(primals, tangents, **params):
    (lhs, rhs), (lhs_dot, rhs_dot) = primals, tangents
    out = conv_general_dilated_p.bind(lhs, rhs, **params)
    terms = []
    if lhs_dot is not None:
        terms.append(conv_general_dilated_p.bind(lhs_dot, rhs, **params))
    if rhs_dot is not None:
        terms.append(conv_general_dilated_p.bind(lhs, rhs_dot, **params))
    return out, add_any(*terms)


conv_general_dilated_p.jvp = _conv_jvp


# ---------------------------------------------------------------------------------------------
# VJP: both transposes are convolutions
# ---------------------------------------------------------------------------------------------


def _transpose_lhs(ct, lhs_shape, lhs_dtype, rhs, params):
    """The cotangent of `lhs`: `ct` convolved with the reversed kernel."""
    ls, rs, os = params["dimension_numbers"]
    groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    if groups > 1 or batch_groups > 1:
        # Each group's output channels become that group's input channels: move the group
        # factor out of the kernel's output-feature axis and into its input-feature axis.
        rhs = _merge_axis(_split_axis(rhs, rs[0], max(groups, batch_groups)), rs[0], rs[1])
    # The forward window covered input positions [o*s - lo, o*s - lo + window); seen from
    # the input, the outputs that touch position i lie in a window of the same size on the
    # stride-dilated cotangent, offset by `window - 1 - lo`.
    pads = []
    for n, k, o, s, (lo, _), ld, rd in zip(
        _spatial(lhs_shape, ls),
        _spatial(shape_of(rhs), rs),
        _spatial(shape_of(ct), os),
        params["window_strides"],
        params["padding"],
        params["lhs_dilation"],
        params["rhs_dilation"],
    ):
        window = _dilate(k, rd)
        before = window - lo - 1
        pads.append((before, _dilate(n, ld) + window - 1 - _dilate(o, s) - before))
    out = conv_general_dilated_p.bind(
        ct,
        _as_dtype(_reverse_spatial(rhs, rs), dtype_of(ct)),
        window_strides=params["lhs_dilation"],
        padding=tuple(pads),
        lhs_dilation=params["window_strides"],
        rhs_dilation=params["rhs_dilation"],
        dimension_numbers=ConvDimensionNumbers(os, _swap_first(rs), ls),
        feature_group_count=max(groups, batch_groups),
        batch_group_count=1,
        precision=params["precision"],
        preferred_element_type=params["preferred_element_type"],
    )
    if batch_groups > 1:
        # The groups came out as feature blocks; they belong to blocks of the batch axis.
        out = _merge_axis(_split_axis(out, ls[1], batch_groups), ls[1], ls[0])
    return _as_dtype(out, lhs_dtype)


def _transpose_rhs(ct, lhs, rhs_shape, rhs_dtype, params):
    """The cotangent of `rhs`: `lhs` correlated with `ct`, batch and feature axes swapped."""
    if 0 in shape_of(ct):
        return None
    ls, rs, os = params["dimension_numbers"]
    groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    # Summing over the batch while keeping features apart turns feature groups into batch
    # groups and back.
    groups, batch_groups = batch_groups, groups
    pads = []
    for n, k, o, s, (lo, _), ld, rd in zip(
        _spatial(shape_of(lhs), ls),
        _spatial(rhs_shape, rs),
        _spatial(shape_of(ct), os),
        params["window_strides"],
        params["padding"],
        params["lhs_dilation"],
        params["rhs_dilation"],
    ):
        # High padding that makes the output exactly the kernel's spatial size.
        pads.append((lo, _dilate(o, s) - _dilate(n, ld) + _dilate(k, rd) - lo - 1))
    out = conv_general_dilated_p.bind(
        _as_dtype(lhs, dtype_of(ct)),
        ct,
        window_strides=params["rhs_dilation"],
        padding=tuple(pads),
        lhs_dilation=params["lhs_dilation"],
        rhs_dilation=params["window_strides"],
        dimension_numbers=ConvDimensionNumbers(_swap_first(ls), _swap_first(os), _swap_first(rs)),
        feature_group_count=groups,
        batch_group_count=batch_groups,
        precision=params["precision"],
        preferred_element_type=params["preferred_element_type"],
    )
    return _as_dtype(out, rhs_dtype)


def _conv_vjp(needs, ct, out, lhs, rhs, **params):
    la, ra = get_aval(lhs), get_aval(rhs)
    ct_lhs = _transpose_lhs(ct, la.shape, la.dtype, rhs, params) if needs[0] else None
    ct_rhs = _transpose_rhs(ct, lhs, ra.shape, ra.dtype, params) if needs[1] else None
    return ct_lhs, ct_rhs


conv_general_dilated_p.vjp = _conv_vjp


# ---------------------------------------------------------------------------------------------
# Batching: fold the mapped axis into the batch or feature axes of one convolution
# ---------------------------------------------------------------------------------------------


def _conv_batch(args, dims, **params):
    (lhs, rhs), (ld, rd) = args, dims
    ls, rs, os = params["dimension_numbers"]
    groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    bind = conv_general_dilated_p.bind
    if ld is not None and rd is not None:
        # Each example has its own kernel: examples become groups of one grouped convolution.
        size = shape_of(lhs)[ld]
        if batch_groups > 1:
            new_lhs = _merge_axis(lhs, ld, ls[0])
            params = {**params, "batch_group_count": batch_groups * size}
        else:
            new_lhs = _merge_axis(lhs, ld, ls[1])
            params = {**params, "feature_group_count": groups * size}
        out = bind(new_lhs, _merge_axis(rhs, rd, rs[0]), **params)
        return _split_axis(out, os[1], size), os[1]
    if ld is not None:
        size = shape_of(lhs)[ld]
        if batch_groups == 1:
            # Shared kernel: the examples simply extend the convolution's batch axis.
            out = bind(_merge_axis(lhs, ld, ls[0]), rhs, **params)
            return _split_axis(out, os[0], size), os[0]
        # Batch groups must stay outermost in the batch axis: put the examples inside them.
        b = ls[0] + (ld <= ls[0])
        new_lhs = _split_axis(lhs, b, batch_groups)
        new_lhs = _merge_axis(new_lhs, ld + (ls[0] < ld), ls[0] + 1)
        new_lhs = _merge_axis(new_lhs, ls[0], ls[0])
        out = bind(new_lhs, rhs, **params)
        return _split_axis(out, os[0], size), os[0]
    size = shape_of(rhs)[rd]
    if groups == 1 and batch_groups == 1:
        # Shared input: the examples' kernels stack along the output-feature axis.
        out = bind(lhs, _merge_axis(rhs, rd, rs[0]), **params)
        return _split_axis(out, os[1], size), os[1]
    # Groups must stay outermost in the kernel's output-feature axis: put examples inside.
    count = max(groups, batch_groups)
    o = rs[0] + (rd <= rs[0])
    new_rhs = _split_axis(rhs, o, count)
    new_rhs = _merge_axis(new_rhs, rd + (rs[0] < rd), rs[0] + 1)
    new_rhs = _merge_axis(new_rhs, rs[0], rs[0])
    out = bind(lhs, new_rhs, **params)
    out = _split_axis(out, os[1], count)
    out = _split_axis(out, os[1] + 1, size)
    return _merge_axis(out, os[1], os[1] + 1), os[1]


conv_general_dilated_p.batch = _conv_batch


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------

_API = "ft.lax.conv_general_dilated"


def _int_tuple(name, value, n, default):
    if value is None:
        return (default,) * n
    try:
        out = tuple(operator.index(v) for v in value)
    except TypeError:
        out = None
    if out is None or len(out) != n:
        raise ValueError(
            f"`{_API}` needs `{name}` to be a sequence of {n} integers (one per spatial "
            f"dimension), got {value!r} instead. Pass one integer per spatial axis."
        )
    return out


def _normalize_padding(padding, lhs_shape, rhs_shape, dnums, strides, lhs_dil, rhs_dil):
    n = len(strides)
    if isinstance(padding, str):
        if any(d != 1 for d in lhs_dil):
            raise ValueError(
                f"`{_API}` got padding={padding!r} together with lhs_dilation={lhs_dil}, but "
                "string padding is not defined for transposed (input-dilated) convolutions, "
                "as in `jax.lax.conv_general_dilated`. Give explicit `(low, high)` pairs."
            )
        window = [_dilate(k, d) for k, d in zip(_spatial(rhs_shape, dnums.rhs_spec), rhs_dil)]
        try:
            pads = jax.lax.padtype_to_pads(
                _spatial(lhs_shape, dnums.lhs_spec), window, strides, padding
            )
        except (TypeError, ValueError, KeyError, RuntimeError) as e:
            raise ValueError(
                f"`{_API}` got padding={padding!r}; expected 'SAME', 'SAME_LOWER', 'VALID' or "
                f"a sequence of (low, high) pairs ({e})."
            ) from None
        return tuple((int(lo), int(hi)) for lo, hi in pads)
    try:
        pads = tuple((operator.index(lo), operator.index(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        pads = None
    if pads is None or len(pads) != n:
        raise ValueError(
            f"`{_API}` needs `padding` to be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of "
            f"{n} (low, high) integer pairs (one per spatial dimension), got {padding!r} "
            "instead."
        )
    return pads


def _normalize_precision(precision):
    if isinstance(precision, list):
        precision = tuple(precision)
    try:
        hash(precision)
    except TypeError:
        raise TypeError(
            f"`{_API}` needs `precision` to be None, a `jax.lax.Precision`, a string or a "
            f"pair of them, got {precision!r} instead."
        ) from None
    return precision


@functools.lru_cache(maxsize=1024)
def _check_with_jax(lhs_aval, rhs_aval, params_key):
    """JAX's own verdict on a signature, once per signature: shapes and dtypes must fit."""
    params = dict(params_key)
    structs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (lhs_aval, rhs_aval)]
    try:
        jax.eval_shape(functools.partial(_conv_impl, **params), *structs)
    except (TypeError, ValueError) as e:
        raise (TypeError if isinstance(e, TypeError) else ValueError)(
            f"`{_API}` cannot convolve an input of type {lhs_aval.str_short()} with a kernel "
            f"of type {rhs_aval.str_short()} under dimension_numbers="
            f"{tuple(params['dimension_numbers'])}, feature_group_count="
            f"{params['feature_group_count']} and batch_group_count="
            f"{params['batch_group_count']}: {e} Check the shapes against the dimension "
            "numbers and group counts."
        ) from None


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    """General n-dimensional convolution, as `jax.lax.conv_general_dilated`.

    Differentiable to any order in both operands (its derivatives are convolutions too),
    batchable with `vmap`, and traceable by `make_graph` and `jax.jit`.

    Args:
      lhs: the input, rank `n + 2`.
      rhs: the kernel, rank `n + 2`.
      window_strides: `n` integers, the stride of the window in each spatial dimension.
      padding: 'SAME', 'SAME_LOWER', 'VALID', or `n` `(low, high)` integer pairs.
      lhs_dilation: `n` integers, the dilation of the input (a transposed convolution);
        default all ones.
      rhs_dilation: `n` integers, the dilation of the kernel (atrous); default all ones.
      dimension_numbers: `None` (NCHW / OIHW / NCHW order), a triple of strings such as
        `('NHWC', 'HWIO', 'NHWC')`, or a `jax.lax.ConvDimensionNumbers`.
      feature_group_count: the number of feature groups (grouped / depthwise convolution).
      batch_group_count: the number of batch groups.
      precision: as in `jax.lax`: `None`, a `jax.lax.Precision`, a string, or a pair.
      preferred_element_type: the accumulation and output dtype, or `None`.

    Returns:
      The convolution output, laid out as the output spec of `dimension_numbers` says.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft
      >>> x = jnp.arange(4.0).reshape(1, 1, 4)
      >>> w = jnp.array([[[1.0, -1.0]]])
      >>> ft.lax.conv_general_dilated(x, w, (1,), "VALID")
      Array([[[-1., -1., -1.]]], dtype=float32)
      >>> ft.grad(lambda w: ft.lax.conv_general_dilated(x, w, (1,), "VALID").sum())(w)
      Array([[[3., 6.]]], dtype=float32)
    """
    la, ra = get_aval(lhs), get_aval(rhs)
    if la.ndim != ra.ndim or la.ndim < 2:
        raise ValueError(
            f"`{_API}` needs an input and a kernel of equal rank of at least 2 (batch and "
            f"feature axes, then the spatial axes), got {la.str_short()} and "
            f"{ra.str_short()} instead."
        )
    try:
        dnums = jax.lax.conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`{_API}` could not read dimension_numbers={dimension_numbers!r} for operands "
            f"{la.str_short()} and {ra.str_short()}: {e} Use None, three strings such as "
            "('NCHW', 'OIHW', 'NCHW'), or a `jax.lax.ConvDimensionNumbers`."
        ) from None
    n = la.ndim - 2
    strides = _int_tuple("window_strides", window_strides, n, 1)
    lhs_dil = _int_tuple("lhs_dilation", lhs_dilation, n, 1)
    rhs_dil = _int_tuple("rhs_dilation", rhs_dilation, n, 1)
    pads = _normalize_padding(padding, la.shape, ra.shape, dnums, strides, lhs_dil, rhs_dil)
    if preferred_element_type is not None:
        preferred_element_type = jax.dtypes.canonicalize_dtype(np.dtype(preferred_element_type))
    params = dict(
        window_strides=strides,
        padding=pads,
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil,
        dimension_numbers=ConvDimensionNumbers(*map(tuple, dnums)),
        feature_group_count=operator.index(feature_group_count),
        batch_group_count=operator.index(batch_group_count),
        precision=_normalize_precision(precision),
        preferred_element_type=preferred_element_type,
    )
    _check_with_jax(
        ShapedArray(la.shape, la.dtype), ShapedArray(ra.shape, ra.dtype), tuple(params.items())
    )
    return conv_general_dilated_p.bind(lhs, rhs, **params)


def conv(lhs, rhs, window_strides, padding, precision=None, preferred_element_type=None):
    """Convolution in NCHW / OIHW layout without dilation, as `jax.lax.conv`.

    Args:
      lhs: the input, `(batch, features, *spatial)`.
      rhs: the kernel, `(out_features, in_features, *window)`.
      window_strides: one stride per spatial dimension.
      padding: 'SAME', 'SAME_LOWER', 'VALID', or `(low, high)` pairs.
      precision: as in `jax.lax.conv`.
      preferred_element_type: the accumulation and output dtype, or `None`.

    Returns:
      The convolution output, `(batch, out_features, *out_spatial)`.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft
      >>> x = jnp.ones((1, 1, 3, 3))
      >>> w = jnp.ones((1, 1, 2, 2))
      >>> ft.lax.conv(x, w, (1, 1), "VALID")[0, 0]
      Array([[4., 4.],
             [4., 4.]], dtype=float32)
    """
    return conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
