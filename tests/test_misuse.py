"""A catalogue of misuse: bad inputs and wrong calls, each with the error it must raise.

Every row of `MISUSE` is `(call, exception type, pattern)`; the pattern names the problem and,
where the message can, the fix. `tests/test_errors.py` holds the contract's own errors; this
file adds the rest. `NO_CRASH` lists hostile but legal inputs (NaN, infinities, empty arrays,
zero-size axes, huge abstract shapes, float16/bfloat16/complex): they must give JAX's answer.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close

X = jnp.asarray([0.5, -1.0, 2.0])
M = jnp.ones((2, 3))
NAN, INF = float("nan"), float("inf")
total = lambda x: fnp.sum(fnp.sin(x))


class Opaque:
    """An object that is not an array and not a registered pytree."""


LEAKED = []


def keep(x):
    LEAKED.append(fnp.sin(x))
    return fnp.sum(x)


def last_leaked(run):
    """Run a transformation of `keep`, then return the tracer it leaked."""
    run()
    return LEAKED[-1]


@ft.custom_vjp
def vjp_wrong_count(x):
    return fnp.sin(x)


vjp_wrong_count.defvjp(lambda x: (fnp.sin(x), x), lambda r, g: (g, g))


@ft.custom_vjp
def vjp_wrong_shape(x):
    return fnp.sin(x)


vjp_wrong_shape.defvjp(lambda x: (fnp.sin(x), x), lambda r, g: (g[:2],))


@ft.custom_jvp
def jvp_wrong_shape(x):
    return fnp.sin(x)


jvp_wrong_shape.defjvp(lambda p, t: (fnp.sin(p[0]), t[0][:2]))

NOT_CALLABLE = {
    "grad": lambda: ft.grad(3.0),
    "value_and_grad": lambda: ft.value_and_grad("f"),
    "vjp": lambda: ft.vjp("f", X),
    "jvp": lambda: ft.jvp(None, (X,), (X,)),
    "linearize": lambda: ft.linearize(X, X),
    "vmap": lambda: ft.vmap(1),
    "jit": lambda: ft.jit(X),
    "make_graph": lambda: ft.make_graph([total]),
    "jacfwd": lambda: ft.jacfwd(0),
    "jacrev": lambda: ft.jacrev(0),
    "hessian": lambda: ft.hessian({}),
    "checkpoint": lambda: ft.checkpoint(2),
}

MISUSE = {
    # --- what grad's function returns
    "grad_of_tuple": (lambda: ft.grad(lambda x: (fnp.sum(x), fnp.sum(x)))(X), TypeError,
                      r"single scalar output.*has_aux=True"),
    "grad_of_list": (lambda: ft.grad(lambda x: [fnp.sum(x)])(X), TypeError,
                     r"single scalar output.*has_aux=True"),
    "grad_of_none": (lambda: ft.grad(lambda x: None)(X), TypeError,
                     r"`grad`.*NoneType.*Return the loss"),
    "grad_of_string": (lambda: ft.grad(lambda x: "loss")(X), TypeError,
                       r"`grad`.*str.*Return the loss"),
    "grad_of_int_cast": (lambda: ft.grad(lambda x: fnp.sum(x).astype(jnp.int32))(X), TypeError,
                         r"int32.*astype\(float\)"),
    "has_aux_not_a_pair": (lambda: ft.grad(fnp.sum, has_aux=True)(X), TypeError,
                           r"has_aux=True.*pair"),
    "has_aux_triple": (lambda: ft.grad(lambda x: (fnp.sum(x), 1, 2), has_aux=True)(X),
                       TypeError, r"has_aux=True.*pair"),
    # --- inputs that are not arrays
    "string_input": (lambda: ft.grad(total)("abc"), TypeError,
                     r"`grad` got a leaf of type str.*static_argnums"),
    "object_input": (lambda: ft.grad(total)(Opaque()), TypeError,
                     r"`grad` got a leaf of type Opaque.*close over"),
    "string_leaf_in_dict": (lambda: ft.grad(lambda d: fnp.sum(d["w"]))({"w": X, "name": "l1"}),
                            TypeError, r"\['name'\].*static_argnums"),
    "object_leaf_in_list": (lambda: ft.grad(lambda l: fnp.sum(l[0]))([X, Opaque()]), TypeError,
                            r"Opaque at \[0\]\[1\].*close over"),
    "string_primal_jvp": (lambda: ft.jvp(total, ("a",), ("b",)), TypeError,
                          r"`jvp` got a leaf of type str"),
    "string_input_vmap": (lambda: ft.vmap(fnp.sin)("abc"), TypeError,
                          r"`vmap` got a leaf of type str"),
    "string_input_vjp": (lambda: ft.vjp(total, "abc"), TypeError, r"`vjp` got a leaf of type str"),
    "string_input_linearize": (lambda: ft.linearize(total, "abc"), TypeError,
                               r"`linearize` got a leaf of type str"),
    "string_arg_jit": (lambda: ft.jit(lambda x, n: x * 2.0)(X, "abc"), TypeError,
                       r"`jit` got a leaf of type str.*static_argnums"),
    "string_to_numpy": (lambda: fnp.sin("abc"), TypeError, r"got str.*functrans.numpy.asarray"),
    "object_to_numpy": (lambda: fnp.add(X, Opaque()), TypeError,
                        r"got Opaque.*functrans.numpy.asarray"),
    "list_to_numpy": (lambda: fnp.sin([1.0, 2.0]), TypeError,
                      r"got list.*functrans.numpy.asarray"),
    "string_to_stop_gradient": (lambda: ft.stop_gradient("a"), TypeError,
                                r"got str.*functrans.numpy.asarray"),
    # --- argnums
    "argnums_float": (lambda: ft.grad(total, argnums=0.5)(X), TypeError,
                      r"`grad` needs `argnums` to be an int or a tuple of ints, got float"),
    "argnums_string": (lambda: ft.grad(total, argnums="0")(X), TypeError,
                       r"argnums.*int or a tuple of ints"),
    "argnums_twice": (lambda: ft.grad(lambda x, y: fnp.sum(x * y), argnums=(0, 0))(X, X),
                      ValueError, r"names one argument twice.*once"),
    "complex_input_grad": (lambda: ft.grad(lambda z: fnp.sum(fnp.abs(z)))(X.astype(complex)),
                           TypeError, r"real inputs.*complex128.*ft.vjp"),
    # --- vjp cotangents
    "cotangent_scalar_for_vector": (lambda: ft.vjp(fnp.sin, X)[1](1.0), ValueError,
                                    r"shape \(\).*Expected shape \(3,\)"),
    "cotangent_none": (lambda: ft.vjp(fnp.sin, X)[1](None), ValueError,
                       r"structure of the primal output.*expected PyTreeDef\(\*\)"),
    "cotangent_batched": (lambda: ft.vjp(fnp.sin, X)[1](jnp.ones((2, 3))), ValueError,
                          r"shape \(2, 3\).*Expected shape \(3,\)"),
    "cotangent_complex": (lambda: ft.vjp(fnp.sin, X)[1](X.astype(complex)), TypeError,
                          r"complex128.*Expected a cotangent of dtype float64"),
    "hvp_tangent_shape": (lambda: ft.hvp(total, (X,), (jnp.ones(4),)), ValueError,
                          r"tangent of shape \(4,\).*primal of shape \(3,\)"),
    # --- vmap axes
    "in_axes_negative_out_of_range": (lambda: ft.vmap(fnp.sin, in_axes=-2)(X), ValueError,
                                      r"axis -2.*rank 1.*Use a valid axis"),
    "out_axes_out_of_range": (lambda: ft.vmap(fnp.sin, out_axes=2)(X), ValueError,
                              r"axis 2 \(`out_axes`\).*Use a valid axis"),
    "in_axes_float": (lambda: ft.vmap(fnp.sin, in_axes=0.5)(X), TypeError,
                      r"`in_axes` to be an int, `None`, or a tuple"),
    "in_axes_string": (lambda: ft.vmap(fnp.sin, in_axes="0")(X), TypeError,
                       r"`in_axes` to be an int, `None`, or a tuple"),
    "in_axes_all_none": (lambda: ft.vmap(fnp.sin, in_axes=None)(X), ValueError,
                         r"at least one argument mapped.*Map at least one"),
    "in_axes_scalar": (lambda: ft.vmap(fnp.sin)(1.0), ValueError,
                       r"scalar \(rank 0\).*`None` in `in_axes`"),
    "in_axes_dict_keys": (lambda: ft.vmap(lambda d: d["a"], in_axes=({"b": 0},))({"a": X}),
                          ValueError, r"not a tree prefix"),
    "batch_sizes_in_a_tree": (
        lambda: ft.vmap(lambda d: d["a"] + d["b"][0])({"a": X, "b": jnp.ones((4, 3))}),
        ValueError, r"inconsistent sizes.*check `in_axes`"),
    # --- tracers that escape through globals and closures
    "leak_from_grad": (lambda: fnp.cos(last_leaked(lambda: ft.grad(keep)(X))), RuntimeError,
                       r"from `grad` was used after.*Return the value"),
    "leak_from_vmap": (lambda: fnp.cos(last_leaked(lambda: ft.vmap(keep)(M))), RuntimeError,
                       r"from `vmap` was used after"),
    "leak_from_jit": (lambda: fnp.cos(last_leaked(lambda: ft.jit(keep)(X))), RuntimeError,
                      r"from `jit` was used after"),
    "leak_into_new_grad": (
        lambda: ft.grad(lambda y: fnp.sum(y * last_leaked(lambda: ft.jvp(keep, (X,), (X,)))))(X),
        RuntimeError, r"from `jvp` was used after"),
    "leak_from_hessian": (lambda: last_leaked(lambda: ft.hessian(keep)(X)) * 2.0, RuntimeError,
                          r"was used after that transformation ended"),
    "leak_to_float": (lambda: float(fnp.sum(last_leaked(lambda: ft.grad(keep)(X)))),
                      RuntimeError, r"from `grad` was used after"),
    "leak_to_jax_numpy": (lambda: jnp.sin(last_leaked(lambda: ft.make_graph(keep)(X))),
                          TypeError, r"functrans\.numpy"),
    # --- control flow
    "cond_branch_shapes": (lambda: ft.lax.cond(True, lambda x: x, lambda x: x[0], X), TypeError,
                           r"same structure, shapes and dtypes.*Cast or reshape"),
    "cond_branch_dtypes": (lambda: ft.lax.cond(True, lambda x: x, lambda x: x.astype(jnp.float32), X),
                           TypeError, r"f32\[3\].*f64\[3\].*Cast or reshape"),
    "scan_carry_changes": (lambda: ft.lax.scan(lambda c, x: (fnp.stack([c, c]), x), 0.0, X),
                           TypeError, r"carry of the type of `init`.*Cast"),
    "grad_through_while": (
        lambda: ft.grad(lambda x: ft.lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x))(1.0),
        ValueError, r"while_loop.*Use `ft.lax.scan`"),
    "switch_no_branches": (lambda: ft.lax.switch(0, [], X), TypeError, r"non-empty sequence"),
    # --- graphs, ft.jit, custom rules, Jacobians, Taylor mode
    "unhashable_static": (lambda: ft.jit(lambda x, n: x * n, static_argnums=1)(X, [1]), TypeError,
                          r"hashable static arguments.*ordinary"),
    "graph_argument_count": (lambda: ft.make_graph(total)(X)(X, X), ValueError,
                             r"structure PyTreeDef\(\(\*,\)\), got PyTreeDef\(\(\*, \*\)\)"),
    "graph_argument_shape": (lambda: ft.make_graph(total)(X)(M), TypeError,
                             r"expects f64\[3\], got f64\[2,3\]"),
    "custom_vjp_count": (lambda: ft.grad(lambda x: fnp.sum(vjp_wrong_count(x)))(X), TypeError,
                         r"one cotangent per differentiable argument"),
    "custom_vjp_shape": (lambda: ft.grad(lambda x: fnp.sum(vjp_wrong_shape(x)))(X), ValueError,
                         r"`custom_vjp` bwd rule.*shape \(2,\).*\(3,\).*exactly the shapes"),
    "custom_jvp_shape": (lambda: ft.jvp(jvp_wrong_shape, (X,), (X,)), ValueError,
                         r"`custom_jvp` JVP rule.*shape \(2,\).*\(3,\)"),
    "jacfwd_of_int": (lambda: ft.jacfwd(fnp.sin)(jnp.arange(3)), TypeError,
                      r"`jacfwd` needs floating-point inputs.*astype"),
    "jacrev_of_int": (lambda: ft.jacrev(fnp.sin)(jnp.arange(3)), TypeError,
                      r"`jacrev` needs floating-point inputs.*astype"),
    "jet_series_shape": (lambda: ft.jet(fnp.sin, (X,), ([jnp.ones(4)],)), ValueError,
                         r"shape \(4,\).*primal has shape \(3,\)"),
    "jet_not_tuples": (lambda: ft.jet(fnp.sin, X, [X]), TypeError, r"`jet` takes `primals` as a tuple"),
    "derivatives_order": (lambda: ft.derivatives(fnp.sin, -1)(0.5), ValueError,
                          r"non-negative integer order"),
    "check_grads_mode": (lambda: ft.check_grads(total, (X,), modes=("sideways",)), ValueError,
                         r"'fwd' or 'rev'"),
    # --- array functions given shapes or indices they cannot take
    "transpose_axes": (lambda: fnp.transpose(M, (0, 0)), ValueError, r"not a permutation"),
    "squeeze_size_2": (lambda: fnp.squeeze(M, axis=0), ValueError, r"Cannot squeeze axis 0"),
    "split_unequal": (lambda: fnp.split(X, 2), ValueError, r"equal division"),
    "float_index": (lambda: ft.grad(lambda x: x[1.0])(X), IndexError, r"float64.*astype\(int\)"),
    "too_many_indices": (lambda: ft.grad(lambda x: x[0, 0])(X), IndexError, r"Too many indices"),
    "axis_out_of_bounds": (lambda: ft.grad(lambda x: fnp.sum(fnp.sum(x, axis=1)))(X), ValueError,
                           r"axis 1 is out of bounds"),
    "einsum_unknown_output": (lambda: fnp.einsum("ij->k", M), ValueError,
                              r"'k' appears in no operand"),
    "max_of_empty": (lambda: ft.grad(fnp.max)(jnp.zeros(0)), ValueError, r"zero-size array"),
}  # fmt: skip


@pytest.mark.parametrize("api", list(NOT_CALLABLE))
def test_not_callable(api):
    with pytest.raises(TypeError, match=rf"`{api}` expects a callable.*Pass the function"):
        NOT_CALLABLE[api]()


@pytest.mark.parametrize("case", list(MISUSE))
def test_misuse(case):
    call, exception, pattern = MISUSE[case]
    with pytest.raises(exception, match=f"(?s){pattern}"):
        call()


def test_catalogue_size():
    assert len(MISUSE) + len(NOT_CALLABLE) >= 40


def test_a_failed_call_leaves_the_next_one_working():
    """After each misuse, the same transformation still works (no state is left behind)."""
    for case in ("grad_of_tuple", "leak_from_grad", "cond_branch_shapes", "argnums_twice"):
        with pytest.raises(MISUSE[case][1]):
            MISUSE[case][0]()
        assert_close(ft.grad(total)(X), jnp.cos(X))


# ---------------------------------------------------------------------------------------------
# Hostile but legal inputs: the answer is JAX's, never a crash.

jsum = lambda x: jnp.sum(jnp.sin(x))
BIG = jax.ShapeDtypeStruct((10**5, 10**5), jnp.float32)

NO_CRASH = {
    # name: (functrans call, the same call in JAX)
    "grad_at_nan": (lambda: ft.grad(fnp.sin)(NAN), lambda: jax.grad(jnp.sin)(NAN)),
    "grad_exp_at_inf": (lambda: ft.grad(fnp.exp)(INF), lambda: jax.grad(jnp.exp)(INF)),
    "grad_log_at_0": (lambda: ft.grad(fnp.log)(0.0), lambda: jax.grad(jnp.log)(0.0)),
    "grad_sqrt_at_0": (lambda: ft.grad(fnp.sqrt)(0.0), lambda: jax.grad(jnp.sqrt)(0.0)),
    "sqrt_of_negative": (lambda: ft.value_and_grad(fnp.sqrt)(-1.0),
                         lambda: jax.value_and_grad(jnp.sqrt)(-1.0)),
    # JAX's rule gives NaN (0/0 ties) op by op, and 0 once XLA has simplified the division;
    # functrans gives NaN in both, as JAX's rule means.
    "max_with_nan": (lambda: ft.jit(ft.grad(fnp.max))(jnp.array([1.0, NAN, 2.0])),
                     lambda: jax.grad(jnp.max)(jnp.array([1.0, NAN, 2.0]))),
    "second_derivative_at_inf": (lambda: ft.grad(ft.grad(fnp.tanh))(-INF),
                                 lambda: jax.grad(jax.grad(jnp.tanh))(-INF)),
    "divide_by_zero": (lambda: ft.grad(lambda x: 1.0 / x)(0.0), lambda: jax.grad(lambda x: 1.0 / x)(0.0)),
    "jvp_at_nan": (lambda: ft.jvp(fnp.sin, (NAN,), (1.0,))[1], lambda: jax.jvp(jnp.sin, (NAN,), (1.0,))[1]),
    "vmap_over_nan_and_inf": (lambda: ft.vmap(ft.grad(fnp.tanh))(jnp.array([INF, NAN, 1.0])),
                              lambda: jax.vmap(jax.grad(jnp.tanh))(jnp.array([INF, NAN, 1.0]))),
    "empty_array": (lambda: ft.grad(total)(jnp.zeros(0)), lambda: jax.grad(jsum)(jnp.zeros(0))),
    "mean_of_empty": (lambda: ft.value_and_grad(fnp.mean)(jnp.zeros(0)),
                      lambda: jax.value_and_grad(jnp.mean)(jnp.zeros(0))),
    "zero_size_axis": (lambda: ft.grad(lambda x: fnp.sum(fnp.sum(x, axis=1) + 1.0))(jnp.zeros((2, 0))),
                       lambda: jax.grad(lambda x: jnp.sum(jnp.sum(x, axis=1) + 1.0))(jnp.zeros((2, 0)))),
    "matmul_over_zero_size": (
        lambda: ft.grad(lambda a, b: fnp.sum(a @ b), (0, 1))(jnp.ones((2, 0)), jnp.ones((0, 3))),
        lambda: jax.grad(lambda a, b: jnp.sum(a @ b), (0, 1))(jnp.ones((2, 0)), jnp.ones((0, 3)))),
    "vmap_over_zero_examples": (lambda: ft.vmap(ft.grad(total))(jnp.zeros((0, 3))),
                                lambda: jax.vmap(jax.grad(jsum))(jnp.zeros((0, 3)))),
    "jacobians_of_empty": (lambda: (ft.jacfwd(fnp.sin)(jnp.zeros(0)), ft.jacrev(fnp.sin)(jnp.zeros(0))),
                           lambda: (jax.jacfwd(jnp.sin)(jnp.zeros(0)), jax.jacrev(jnp.sin)(jnp.zeros(0)))),
    "empty_slice": (lambda: ft.grad(lambda x: fnp.sum(x[2:2]) + x[0])(X),
                    lambda: jax.grad(lambda x: jnp.sum(x[2:2]) + x[0])(X)),
    "index_past_the_end": (lambda: ft.grad(lambda x: x[5] + x[-7])(X),
                           lambda: jax.grad(lambda x: x[5] + x[-7])(X)),
    "huge_shape_abstract_grad": (
        lambda: jax.eval_shape(ft.grad(lambda x: fnp.sum(fnp.sin(x) @ x.T)), BIG),
        lambda: jax.eval_shape(jax.grad(lambda x: jnp.sum(jnp.sin(x) @ x.T)), BIG)),
    "huge_shape_abstract_hvp": (
        lambda: jax.eval_shape(lambda x: ft.hvp(lambda y: fnp.sum(y ** 3), (x,), (x,)), BIG),
        lambda: jax.eval_shape(lambda x: jax.jvp(jax.grad(lambda y: jnp.sum(y ** 3)), (x,), (x,))[1], BIG)),
    "float16": (lambda: ft.grad(lambda x: fnp.sum(fnp.sin(x) * x))(jnp.ones(3, jnp.float16)),
                lambda: jax.grad(lambda x: jnp.sum(jnp.sin(x) * x))(jnp.ones(3, jnp.float16))),
    "bfloat16": (lambda: ft.grad(lambda x: fnp.sum(fnp.tanh(x) ** 2))(jnp.ones(3, jnp.bfloat16)),
                 lambda: jax.grad(lambda x: jnp.sum(jnp.tanh(x) ** 2))(jnp.ones(3, jnp.bfloat16))),
    "float16_times_float64": (
        lambda: ft.grad(lambda a, b: fnp.sum(a * b), (0, 1))(jnp.ones(3, jnp.float16), X),
        lambda: jax.grad(lambda a, b: jnp.sum(a * b), (0, 1))(jnp.ones(3, jnp.float16), X)),
    "bfloat16_times_float16": (
        lambda: ft.grad(lambda a, b: fnp.sum(a * b), (0, 1))(jnp.ones(3, jnp.bfloat16), jnp.ones(3, jnp.float16)),
        lambda: jax.grad(lambda a, b: jnp.sum(a * b), (0, 1))(jnp.ones(3, jnp.bfloat16), jnp.ones(3, jnp.float16))),
    "float32_times_int": (lambda: ft.grad(lambda a: fnp.sum(a * jnp.arange(3)))(jnp.ones(3, jnp.float32)),
                          lambda: jax.grad(lambda a: jnp.sum(a * jnp.arange(3)))(jnp.ones(3, jnp.float32))),
    "complex_jvp": (lambda: ft.jvp(lambda z: fnp.sin(z) * z, (X * 1j,), (X + 0j,)),
                    lambda: jax.jvp(lambda z: jnp.sin(z) * z, (X * 1j,), (X + 0j,))),
    "complex_vjp": (lambda: ft.vjp(lambda z: fnp.exp(z) * z, X + 2j)[1](X - 1j),
                    lambda: jax.vjp(lambda z: jnp.exp(z) * z, X + 2j)[1](X - 1j)),
    "complex64_jvp": (lambda: ft.jvp(lambda z: z * z, (jnp.ones(2, jnp.complex64),), (jnp.ones(2, jnp.complex64) * 1j,)),
                      lambda: jax.jvp(lambda z: z * z, (jnp.ones(2, jnp.complex64),), (jnp.ones(2, jnp.complex64) * 1j,))),
}  # fmt: skip


def _tolerance(tree):
    """Loose enough for a last-bit difference in half precision, tight in float64."""
    dtypes = {np.dtype(getattr(x, "dtype", np.float64)) for x in jax.tree_util.tree_leaves(tree)}
    return 2e-2 if {np.dtype(jnp.bfloat16), np.dtype(np.float16)} & dtypes else 1e-12


@pytest.mark.parametrize("case", list(NO_CRASH))
def test_hostile_input_gives_jax_answer(case):
    ours, theirs = NO_CRASH[case]
    want = theirs()
    got = ours()
    if isinstance(want, jax.ShapeDtypeStruct):
        assert (got.shape, got.dtype) == (want.shape, want.dtype)
        return
    tol = _tolerance(want)
    assert_close(got, want, rtol=tol, atol=tol)


def test_real_input_times_complex_constant_in_reverse_mode():
    # found here: the algebraic value numbering read a complex literal by its real part, so
    # `x * (1 + 1j)` was shared with `x` (value and derivative both wrong)
    ours = ft.vjp(lambda x: x * (1 + 1j), X)
    theirs = jax.vjp(lambda x: x * (1 + 1j), X)
    assert_close(ours[0], theirs[0])
    assert_close(ours[1](X - 1j), theirs[1](X - 1j))


def test_derivative_of_abs_of_complex_matches_jax():  # it used to raise: no `real`/`conj` then
    z = X + 1j * (X - 0.5)
    ours = ft.vjp(lambda z: fnp.sum(fnp.abs(z) ** 3), z)[1](1.0)
    theirs = jax.vjp(lambda z: jnp.sum(jnp.abs(z) ** 3), z)[1](1.0)
    assert_close(ours, theirs)
    assert_close(ft.jvp(fnp.abs, (z,), (X + 0.3j,)), jax.jvp(jnp.abs, (z,), (X + 0.3j,)))
    zero = jnp.zeros(2, complex)  # 0 at the origin, as JAX
    assert_close(ft.jvp(fnp.abs, (zero,), (zero + 1,)), jax.jvp(jnp.abs, (zero,), (zero + 1,)))
