"""Shared test configuration: float64 everywhere, a seeded `rng`, and `assert_close`.

The oracle for every derivative test is JAX itself, run in float64 so that tolerances can be
tight. `assert_close` compares two pytrees leaf by leaf and also insists that their tree
structures, shapes and dtypes agree, so a test cannot pass by accident on a wrong container or
a silently broadcast result.
"""

import os

import jax
import numpy as np
import pytest

from functrans._src import lazy

jax.config.update("jax_enable_x64", True)

# Eager transformations compile each new recording with XLA by default (`lazy.py`). The suite
# checks the rules themselves op by op, which halves its time; `tests/test_lazy.py` covers the
# compiled eager mode, and `FUNCTRANS_LAZY=1 python -m pytest` runs everything in it.
lazy.enabled = os.environ.get("FUNCTRANS_LAZY", "0") != "0"

SEED = 0


@pytest.fixture
def rng():
    """A fresh `numpy.random.RandomState` with a fixed seed for every test."""
    return np.random.RandomState(SEED)


def _dtype(x):
    return np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype)


def assert_close(a, b, rtol=1e-7, atol=1e-9, check_dtype=True):
    """Asserts that two pytrees have the same structure and allclose leaves.

    Args:
      a: the pytree under test (functrans' result).
      b: the reference pytree (JAX's result).
      rtol: relative tolerance.
      atol: absolute tolerance.
      check_dtype: also require equal leaf dtypes (weak types are ignored).

    Leaves of dtype `float0` (the tangent type of integer inputs) must be `float0` on both
    sides with the same shape.
    """
    a_leaves, a_tree = jax.tree_util.tree_flatten(a)
    b_leaves, b_tree = jax.tree_util.tree_flatten(b)
    assert a_tree == b_tree, f"Expected tree structure {b_tree}, got {a_tree} instead."
    for i, (x, y) in enumerate(zip(a_leaves, b_leaves)):
        x_dtype, y_dtype = _dtype(x), _dtype(y)
        if jax.dtypes.float0 in (x_dtype, y_dtype):
            assert x_dtype == y_dtype, f"leaf {i}: expected dtype {y_dtype}, got {x_dtype}."
            assert np.shape(x) == np.shape(y), (
                f"leaf {i}: expected shape {np.shape(y)}, got {np.shape(x)}."
            )
            continue
        x_np, y_np = np.asarray(x), np.asarray(y)
        assert x_np.shape == y_np.shape, f"leaf {i}: expected shape {y_np.shape}, got {x_np.shape}."
        if check_dtype:
            assert x_dtype == y_dtype, f"leaf {i}: expected dtype {y_dtype}, got {x_dtype}."
        np.testing.assert_allclose(x_np, y_np, rtol=rtol, atol=atol, err_msg=f"leaf {i}")


def assert_jax_arrays(tree):
    """Asserts that every leaf of `tree` is a concrete `jax.Array` (not a tracer or ndarray)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        assert isinstance(leaf, jax.Array), f"Expected a jax.Array, got {type(leaf)} instead."
        assert not isinstance(leaf, jax.core.Tracer), f"A tracer escaped: {leaf!r}"
