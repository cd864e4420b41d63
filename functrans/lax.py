"""`ft.lax`: `jax.lax` names over functrans primitives."""

from __future__ import annotations

from ._src.control_flow import cond, fori_loop, scan, switch, while_loop
from ._src.prims import elementwise as _ew
from ._src.prims import linalg as _la
from ._src.prims import structural as _st
from ._src.prims.conv import conv, conv_general_dilated
from ._src.prims.special import (
    bessel_i0e,
    bessel_i1e,
    digamma,
    erf_inv,
    igamma,
    igamma_grad_a,
    igammac,
    lgamma,
    polygamma,
    zeta,
)


def stop_gradient(x):
    """The identity whose derivative is zero at every order (as `jax.lax.stop_gradient`)."""
    import jax

    return jax.tree_util.tree_map(_ew.stop_gradient, x)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """`jax.lax.dot_general`: contraction and batch axes as `((lc, rc), (lb, rb))`.

    `precision` (`None`, a `jax.lax.Precision` or its name, or a pair for the two operands)
    and `preferred_element_type` (the output dtype, e.g. `float32` for `bfloat16` operands)
    are passed to XLA as JAX passes them, and kept by every derivative.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> x = fnp.ones((2, 3))
    >>> ft.lax.dot_general(x, x, (((1,), (1,)), ((), ())), precision="highest").shape
    (2, 2)
    """
    return _la.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type)


def integer_pow(x, y):
    return _ew.integer_pow(x, y)


def rsqrt(x):
    return _ew.rsqrt(x)


def logistic(x):
    return _ew.logistic_p.bind(x)


def pad(operand, padding_value, padding_config):
    return _st.pad(operand, padding_value, padding_config)


def select(pred, on_true, on_false):
    return _ew.select(pred, on_true, on_false)


def dynamic_slice(operand, start_indices, slice_sizes):
    """A slice of static size `slice_sizes` starting at (possibly traced) `start_indices`.

    As `jax.lax.dynamic_slice`: starts are clamped so that the slice lies inside `operand`.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> f = lambda x, i: fnp.sum(ft.lax.dynamic_slice(x, (i,), (2,)) ** 2)
      >>> [float(g) for g in ft.grad(f)(fnp.arange(4.0), 1)]
      [0.0, 2.0, 4.0, 0.0]
    """
    from ._src.from_jax_rules import _dynamic_slice

    starts = _starts(operand, start_indices, "dynamic_slice")
    return _dynamic_slice(operand, *starts, slice_sizes=tuple(slice_sizes))


def dynamic_update_slice(operand, update, start_indices):
    """`operand` with `update` written at (possibly traced) `start_indices`, clamped to fit.

    As `jax.lax.dynamic_update_slice`; differentiable in `operand` and `update`.
    """
    from ._src.from_jax_rules import _dynamic_update_slice

    starts = _starts(operand, start_indices, "dynamic_update_slice")
    return _dynamic_update_slice(operand, update, *starts)


def _starts(operand, start_indices, name):
    import numpy as np

    from ._src.core import get_aval

    starts = list(start_indices)
    ndim = get_aval(operand).ndim
    if len(starts) != ndim:
        raise ValueError(
            f"`ft.lax.{name}` expects one start index per axis of the operand ({ndim}), got "
            f"{len(starts)} instead."
        )
    shape = get_aval(operand).shape
    out = []
    for s, n in zip(starts, shape):
        if not np.issubdtype(get_aval(s).dtype, np.integer):
            raise TypeError(
                f"`ft.lax.{name}` expects integer start indices, got {get_aval(s).str_short()} "
                "instead. Convert them with `.astype(int)` (or `fnp.int32`)."
            )
        # Negative starts count from the end, as in `jax.lax` (then clamping applies).
        if isinstance(s, int):
            out.append(s + n if s < 0 else s)
        else:
            out.append(_ew.select(s < 0, s + n, s))
    return out


def complex(x, y):  # noqa: A001  (jax.lax's name)
    """`x + i y` from real arrays, as `jax.lax.complex` (differentiable in both)."""
    from ._src.prims.complex import complex_

    return complex_(x, y)


def fft(x, fft_type, fft_lengths):
    """`jax.lax.fft`: `fft_type` "FFT", "IFFT", "RFFT" or "IRFFT" over the trailing axes."""
    from ._src.prims.fft import fft as _fft

    return _fft(x, fft_type, fft_lengths)
