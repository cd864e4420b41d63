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
