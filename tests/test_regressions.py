"""One test per mismatch the differential fuzzer (`tests/fuzz.py`) found, as a small program.

Each case is the fuzzer's program, cut down to what shows the bug, run through the checks
that failed (`fuzz.check_program(..., only=...)`), so a regression fails the same way the
campaign saw it.
"""

import fuzz
import fuzz_programs
import pytest

CASES = {
    # lax.pad with a negative edge crops its input; its VJP sliced with the negative edge as
    # a limit and returned a cotangent of the wrong shape (campaign seeds 4 and 1002).
    "pad_negative_edge": (
        """def prog(np, nn, lax, x0):
    v0 = lax.pad(np.sin(x0), 0.0, [(-1, 2, 1), (1, -1, 0)])
    v1 = lax.pad(v0 * v0, 1.5, [(1, -2, 2), (-1, 0, 1)])
    return [v1]
""",
        ((3, 3),),
        ("grad", "vjp", "jacrev", "order2_fr", "order2_rr", "vmap_grad"),
    ),
    # `simplify` folded literal arithmetic with JAX, which an enclosing `jax.jit` stages:
    # `jax.jit(lambda: ft.jit(hvp)(x))` failed with a ConcretizationTypeError (seed 1).
    "ft_jit_under_jax_jit_folds_literals": (
        """def prog(np, nn, lax, x0):
    v0 = np.clip(x0, -0.5, 0.7)
    v1 = v0 / (1.0 + x0 * x0)
    v2 = np.arctanh(0.9 * np.tanh(v1))
    v3 = v2[...]
    v4 = np.inner(v2, v3)
    v5 = np.var(v3, axis=0, keepdims=False)
    v6 = np.inner(v3, v2)
    return [v4, v5, v6]
""",
        ((3,),),
        ("ft.jit(hvp)",),
    ),
    # `np.inner` of an array and a 0-d value is a product in NumPy; functrans' `inner` took
    # the last axis of the scalar and failed with a ZeroDivisionError (seed 100038).
    "inner_with_a_scalar": (
        """def prog(np, nn, lax, x0, x1):
    v0 = x1[np.array([0]), None, :]
    return [np.inner(v0, x0), np.inner(x0, x1)]
""",
        ((), (2, 3)),
        ("value", "grad", "jvp", "order2_rr"),
    ),
    # `np.take` clamped out-of-range indices (as `x[i]` does) where `jnp.take` fills them
    # with NaN and a zero derivative: the values differed only where JAX's are NaN, which
    # the value check skips, and `jacfwd` gave the clamped entry's derivative (seed 500100).
    "take_fills_out_of_range": (
        """def prog(np, nn, lax, x0):
    v3 = np.stack([x0, np.sin(x0)], axis=0)
    return [np.take(v3 * v3, np.array([1, 2, 2]), axis=0)]
""",
        ((3,),),
        ("jacfwd", "jacrev"),
    ),
    # `x - floor(2x) - x` has a zero derivative; its Hessian-vector product is the zero
    # polynomial, which `simplify` emitted as no value at all, so `ft.jit(hvp)` raised
    # `KeyError: None` (seed 700182). A constant output was a bare Python number.
    "simplify_zero_polynomial_output": (
        """def prog(np, nn, lax, x0):
    v0 = np.floor(2.0 * x0) + x0
    v1 = x0 - v0
    return [np.mean(v1, axis=(0, 1), keepdims=False)]
""",
        ((2, 1, 3),),
        ("ft.jit(hvp)", "jax.jit(grad)"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_regression(case):
    source, shapes, only = CASES[case]
    n, found = fuzz.check_program(fuzz_programs.Program(source, shapes), 1, only=only)
    assert n == len(only)
    assert not found, "\n".join(map(str, found))
