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
