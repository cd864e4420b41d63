"""`ft.lax`: `jax.lax` names over functrans primitives."""

from __future__ import annotations

from ._src.control_flow import cond, fori_loop, scan, switch, while_loop
from ._src.prims import elementwise as _ew
from ._src.prims import linalg as _la
from ._src.prims import structural as _st
from ._src.prims.conv import conv, conv_general_dilated


def stop_gradient(x):
    """The identity whose derivative is zero at every order (as `jax.lax.stop_gradient`)."""
    import jax

    return jax.tree_util.tree_map(_ew.stop_gradient, x)


def dot_general(lhs, rhs, dimension_numbers):
    return _la.dot_general(lhs, rhs, dimension_numbers)


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
