"""Bit-level operations: reinterpreting bits, shifts, population count, leading zeros.

`jax.numpy` builds `signbit`, `copysign`, `frexp`, `ldexp`, `spacing` and the integer shifts
from these. They carry no derivative (their results are integers, or floats read from raw
bits), exactly as in JAX, so transformations pass them through; they exist so that
`ft.from_jax` programs using them can be traced, batched and compiled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import _elementwise_aval, broadcast_batcher

# =============================================================================================
# bitcast_convert_type: the same bits read as another dtype of the same width
# =============================================================================================

bitcast_convert_type_p = Primitive("bitcast_convert_type", differentiable=False)
bitcast_convert_type_p.impl = lambda x, *, new_dtype: jax.lax.bitcast_convert_type(x, new_dtype)


def _bitcast_aval(x, *, new_dtype):
    aval = get_aval(x)
    new_dtype = np.dtype(new_dtype)
    if new_dtype.itemsize != aval.dtype.itemsize:
        raise NotImplementedError(
            f"`bitcast_convert_type` between dtypes of different widths ({aval.dtype} to "
            f"{new_dtype}) is not supported on functrans values; bitcast between dtypes of "
            "the same width instead."
        )
    return ShapedArray(aval.shape, new_dtype)


bitcast_convert_type_p.abstract_eval = _bitcast_aval
bitcast_convert_type_p.batch = broadcast_batcher(bitcast_convert_type_p)


def bitcast_convert_type(x, new_dtype):
    return bitcast_convert_type_p.bind(x, new_dtype=np.dtype(new_dtype))


# =============================================================================================
# Shifts, population count, count of leading zeros (integers)
# =============================================================================================


def _integer_op(name, fun, nargs):
    p = Primitive(name, differentiable=False)
    if nargs == 2:
        p.impl = lambda x, y: fun(*jnp.broadcast_arrays(x, jnp.asarray(y, jnp.result_type(x))))
    else:
        p.impl = fun
    p.abstract_eval = _elementwise_aval
    p.batch = broadcast_batcher(p)
    return p


shift_left_p = _integer_op("shift_left", jax.lax.shift_left, 2)
shift_right_arithmetic_p = _integer_op("shift_right_arithmetic", jax.lax.shift_right_arithmetic, 2)
shift_right_logical_p = _integer_op("shift_right_logical", jax.lax.shift_right_logical, 2)
population_count_p = _integer_op("population_count", jax.lax.population_count, 1)
clz_p = _integer_op("clz", jax.lax.clz, 1)
bitwise_and_p = _integer_op("bitwise_and", jax.lax.bitwise_and, 2)
bitwise_or_p = _integer_op("bitwise_or", jax.lax.bitwise_or, 2)
bitwise_xor_p = _integer_op("bitwise_xor", jax.lax.bitwise_xor, 2)
bitwise_not_p = _integer_op("bitwise_not", jax.lax.bitwise_not, 1)
mulhi_p = _integer_op("mulhi", jax.lax.mulhi, 2)  # the high half of an integer product

__all__ = [
    "bitcast_convert_type", "bitcast_convert_type_p", "bitwise_and_p", "bitwise_not_p",
    "bitwise_or_p", "bitwise_xor_p", "clz_p", "mulhi_p", "population_count_p",
    "shift_left_p", "shift_right_arithmetic_p", "shift_right_logical_p",
]  # fmt: skip
