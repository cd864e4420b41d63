"""The benchmark workloads at tiny sizes: functrans and JAX compute the same numbers.

This guards the benchmark code (a workload that silently computed something else would make
its timings meaningless) and runs each workload through functrans' eager path once.
"""

import jax
import numpy as np
import pytest

from benchmarks import workloads as W
from conftest import assert_close


@pytest.mark.parametrize("name", list(W.WORKLOADS))
def test_workload_matches_jax(name):
    ft_fun, ft_args = W.build(name, W.functrans_lib(), size="tiny", dtype=np.float64)
    jax_fun, jax_args = W.build(name, W.jax_lib(), size="tiny", dtype=np.float64)
    expected = jax.jit(jax_fun)(*jax_args)
    assert_close(ft_fun(*ft_args), expected, rtol=1e-10, atol=1e-10)


def _other_columns():
    from benchmarks import others

    tiny = W.SIZES["tiny"]["order"]
    return [
        (col, name, make)
        for col, table in others.suites(tiny).items()
        for name, make in table.items()
    ]


@pytest.mark.parametrize(
    "column,name,make", _other_columns(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_other_columns_compute_what_jax_computes(column, name, make):
    # the PyTorch and autograd columns time their own code: it must compute the same thing
    jax_fun, args = W.build(name, W.jax_lib(), size="tiny", dtype=np.float64)
    expected = jax.jit(jax_fun)(*args)
    got = make(args)()  # numpy data, as the benchmark hands it over
    flat_expected = jax.tree_util.tree_leaves(expected)
    flat_got = [
        np.asarray(g.detach() if hasattr(g, "detach") else g)
        for g in jax.tree_util.tree_leaves(got)
    ]
    assert len(flat_got) == len(flat_expected)
    for g, e in zip(flat_got, flat_expected):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-9, atol=1e-9)


def test_floor_counts_at_least_the_matrix_products():
    # benchmarks/floor.py divides XLA's FLOP count by the machine's peak: the count must hold
    # every matrix product of the MLP (3 forward, 3 for the weights, 2 for the hidden inputs).
    from benchmarks import floor

    (n0, n1, n2, n3), b = W.SIZES["tiny"]["mlp"], W.SIZES["tiny"]["mlp_batch"]
    products = 2 * b * (2 * (n0 * n1 + n1 * n2 + n2 * n3) + n1 * n2 + n2 * n3)
    row = floor.floor_row("W2 MLP", peak=1e9, budget=0.01, rounds=1, size="tiny")
    assert products <= row["flops"] < 2 * products
    assert row["arithmetic_s"] == row["flops"] / 1e9
    assert row["floor_jit"] == row["jax_jit_s"] / row["jax_eager_s"] > 0
