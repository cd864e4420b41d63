"""Every error of the contract's "Errors" section: it raises at once, with a useful message.

Messages are matched on stable key words (the API or dtype they name), not on their wording.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close

X3 = jnp.asarray([0.5, -1.0, 2.0])


def assert_mentions(excinfo, *patterns):
    message = str(excinfo.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in the message: {message!r}"


# ---------------------------------------------------------------------------------------------
# grad of a function whose output is not a real scalar.

GRAD_OUTPUTS = {
    # name: (fun, input, key words the message must contain)
    "vector": (lambda x: fnp.sin(x), jnp.ones((7, 5)), ("scalar", "7", "5")),
    "shape_1": (lambda x: fnp.sum(x, keepdims=True), jnp.ones(3), ("scalar", "1")),
    "complex": (lambda x: fnp.sum(x).astype("complex128"), X3, ("complex",)),
    "int": (lambda x: fnp.argmax(x), X3, ("int",)),
    "bool": (lambda x: fnp.sum(x) > 0, X3, ("bool",)),
}


@pytest.mark.parametrize("api", ["grad", "value_and_grad"])
@pytest.mark.parametrize("case", list(GRAD_OUTPUTS))
def test_grad_of_non_real_scalar_output(case, api):
    fun, x, words = GRAD_OUTPUTS[case]
    with pytest.raises(TypeError, match=words[0]) as excinfo:
        getattr(ft, api)(fun)(x)
    assert_mentions(excinfo, *words[1:])


def test_grad_of_non_scalar_output_inside_grad():
    with pytest.raises(TypeError, match="scalar"):
        ft.grad(lambda x: fnp.sum(ft.grad(lambda y: y * x)(x)))(X3)


# ---------------------------------------------------------------------------------------------
# grad/vjp with respect to integer or boolean inputs without allow_int.

INT_INPUTS = {
    "python_int": ((3,), 0, "int"),
    "int_array": ((jnp.asarray([1, 2, 3]),), 0, "int"),
    "bool_array": ((jnp.asarray([True, False, True]),), 0, "bool"),
    "python_bool": ((True,), 0, "bool"),
    "second_argnum": ((X3, jnp.asarray([1, 2, 3])), 1, "int"),
    "argnums_tuple": ((X3, jnp.asarray([1, 2, 3])), (0, 1), "int"),
}


def _sum_times(*args):
    out = 1.0
    for a in args:
        out = out * fnp.sum(a * 1.0)
    return out


@pytest.mark.parametrize("api", ["grad", "value_and_grad"])
@pytest.mark.parametrize("case", list(INT_INPUTS))
def test_grad_of_int_input(case, api):
    args, argnums, word = INT_INPUTS[case]
    with pytest.raises(TypeError, match=word):
        getattr(ft, api)(_sum_times, argnums=argnums)(*args)


@pytest.mark.parametrize("case", ["python_int", "int_array", "bool_array"])
def test_vjp_of_int_input(case):
    args, _, word = INT_INPUTS[case]
    with pytest.raises(TypeError, match=word):
        ft.vjp(_sum_times, *args)


# ---------------------------------------------------------------------------------------------
# vjp cotangents and jvp tangents that do not match.

F32 = r"f(loat)?32"
F64 = r"f(loat)?64"

COTANGENTS = {
    # name: (fun, cotangent, key words naming what was expected and what arrived)
    "leaf_for_tuple": (lambda x: (x, x * 2.0), X3, ()),
    "tuple_too_long": (lambda x: (x, x * 2.0), (X3, X3, X3), ()),
    "list_for_tuple": (lambda x: (x, x * 2.0), [X3, X3], ()),
    "dict_keys": (lambda x: {"a": x, "b": x}, {"a": X3, "c": X3}, ()),
    "shape": (lambda x: x * 2.0, jnp.ones(4), ("3", "4")),
    "rank": (lambda x: x * 2.0, jnp.ones((3, 1)), ("3",)),
    "dtype": (lambda x: x * 2.0, jnp.ones(3, jnp.float32), (F32, F64)),
    "int_dtype": (lambda x: x * 2.0, jnp.ones(3, jnp.int32), ("int32", F64)),
}


@pytest.mark.parametrize("case", list(COTANGENTS))
def test_vjp_cotangent_mismatch(case):
    fun, ct, words = COTANGENTS[case]
    _, f_vjp = ft.vjp(fun, X3)
    with pytest.raises((ValueError, TypeError), match=r"(?i)expect") as excinfo:
        f_vjp(ct)
    assert_mentions(excinfo, *words)


TANGENTS = {
    # name: (primals, tangents, key words)
    "too_many": ((X3,), (X3, X3), ()),
    "list_vs_tuple_length": ((X3, X3), [X3], ()),
    "dict_keys": (({"a": X3},), ({"b": X3},), ()),
    "shape": ((X3,), (jnp.ones(4),), ("3", "4")),
    "dtype": ((X3,), (jnp.ones(3, jnp.float32),), (F32, F64)),
    "int_dtype": ((X3,), (jnp.ones(3, jnp.int32),), ("int32", F64)),
}


@pytest.mark.parametrize("case", list(TANGENTS))
def test_jvp_tangent_mismatch(case):
    primals, tangents, words = TANGENTS[case]
    fun = lambda *args: jax.tree_util.tree_map(fnp.sin, args)
    with pytest.raises((ValueError, TypeError)) as excinfo:
        ft.jvp(fun, primals, tangents)
    assert_mentions(excinfo, *words)


def test_jvp_tangents_not_a_sequence():
    with pytest.raises((ValueError, TypeError), match=r"tuple|list"):
        ft.jvp(fnp.sin, X3, X3)


def test_linearize_tangent_mismatch():
    _, f_jvp = ft.linearize(fnp.sin, X3)
    with pytest.raises((ValueError, TypeError)) as excinfo:
        f_jvp(jnp.ones(4))
    assert_mentions(excinfo, "3", "4")


# ---------------------------------------------------------------------------------------------
# A functrans traced value handed to a library that would treat it as a constant.

CONSUMERS = {
    "numpy.asarray": lambda t: np.asarray(t),
    "numpy.sin": lambda t: np.sin(t),
    "numpy.sum": lambda t: np.sum(t),
    "jax.numpy.sin": lambda t: jnp.sin(t),
    "jax.numpy.asarray": lambda t: jnp.asarray(t),
    "jax.nn.relu": lambda t: jax.nn.relu(t),
    "jax.lax.mul": lambda t: jax.lax.mul(t, t),
    "float": lambda t: float(fnp.sum(t)),
    "int": lambda t: int(fnp.sum(t)),
}

TRANSFORMS = {
    "grad": lambda f: ft.grad(lambda x: fnp.sum(f(x) * 1.0))(X3),
    "jvp": lambda f: ft.jvp(f, (X3,), (X3,)),
    "vjp": lambda f: ft.vjp(f, X3),
    "grad_of_grad": lambda f: ft.grad(ft.grad(lambda x: fnp.sum(f(x) * 1.0) * x[0]))(X3),
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_traced_value_given_to_another_library(consumer, transform):
    with pytest.raises(TypeError, match=r"functrans\.numpy"):
        TRANSFORMS[transform](lambda x: CONSUMERS[consumer](fnp.sin(x)))


# ---------------------------------------------------------------------------------------------
# bool(), int(), float(), `if` on a value that is not concrete.

# Each converts a value with no derivative (a comparison, a stopped value), so the only thing
# wrong is that the value is abstract; under `ft.grad` alone every one of these would work.
CONVERSIONS = {
    "bool": lambda x: fnp.sin(x) * bool(x > 0),
    "int": lambda x: fnp.sin(x) * int(ft.stop_gradient(x) * 2.0),
    "float": lambda x: fnp.sin(x) * float(ft.stop_gradient(x) * 2.0),
    "if": lambda x: fnp.sin(x) if x > 0 else fnp.cos(x),
}


@pytest.mark.parametrize("conversion", list(CONVERSIONS))
def test_conversion_of_concrete_value_is_fine(conversion):
    assert_close(ft.grad(CONVERSIONS[conversion])(0.5), jnp.cos(0.5))


def needs(name):
    """Skip until the transformation `ft.<name>` (a later issue) exists."""
    return pytest.mark.skipif(not hasattr(ft, name), reason=f"`ft.{name}` is not built yet")


ABSTRACT = {
    # name: (run the conversion under it, the transformation the message must name)
    "jax.jit": (lambda f: jax.jit(ft.grad(f))(0.5), "jit"),
    "ft.jit": pytest.param((lambda f: ft.jit(f)(0.5), "jit"), marks=needs("jit")),
    "make_graph": (lambda f: ft.make_graph(f)(0.5), "make_graph"),
    "vmap": pytest.param((lambda f: ft.vmap(f)(X3), "vmap"), marks=needs("vmap")),
}


@pytest.mark.parametrize("where", list(ABSTRACT.values()), ids=list(ABSTRACT))
@pytest.mark.parametrize("conversion", list(CONVERSIONS))
def test_conversion_of_abstract_value(conversion, where):
    run, name = where
    with pytest.raises(TypeError, match=name):
        run(CONVERSIONS[conversion])


# ---------------------------------------------------------------------------------------------
# A traced value that escapes its transformation.

ESCAPES = {
    # name: (run f under the transformation, the name the message must contain)
    "grad": (lambda f: ft.grad(lambda x: fnp.sum(f(x)))(X3), r"grad|vjp"),
    "value_and_grad": (lambda f: ft.value_and_grad(lambda x: fnp.sum(f(x)))(X3), r"grad|vjp"),
    "jvp": (lambda f: ft.jvp(f, (X3,), (X3,)), "jvp"),
    "vjp": (lambda f: ft.vjp(f, X3), "vjp"),
    "make_graph": (lambda f: ft.make_graph(f)(X3), "make_graph"),
}

USES = {
    "numpy_function": lambda t: fnp.sin(t),
    "operator": lambda t: t + 1.0,
    "reduction": lambda t: fnp.sum(t),
    "inside_new_grad": lambda t: ft.grad(lambda y: fnp.sum(y * t))(X3),
    "inside_new_jvp": lambda t: ft.jvp(lambda y: y * t, (X3,), (X3,)),
}


@pytest.mark.parametrize("use", list(USES))
@pytest.mark.parametrize("transform", list(ESCAPES))
def test_escaped_tracer(transform, use):
    leaked = []

    def f(x):
        y = fnp.sin(x)
        leaked.append(y)
        return y * x

    run, name = ESCAPES[transform]
    run(f)
    with pytest.raises(RuntimeError, match=name):
        USES[use](leaked[0])


# ---------------------------------------------------------------------------------------------
# Wrong argnums, in_axes, static_argnums, batch sizes; shapes that do not broadcast.

two = lambda x, y: fnp.sum(x * y)

BAD_ARGNUMS = [2, -3, (0, 2), (5,)]


@pytest.mark.parametrize("argnums", BAD_ARGNUMS, ids=str)
@pytest.mark.parametrize("api", ["grad", "value_and_grad"])
def test_wrong_argnums(api, argnums):
    with pytest.raises(ValueError, match="argnums"):
        getattr(ft, api)(two, argnums=argnums)(X3, X3)


BAD_VMAP = {
    "in_axes_too_long": (lambda: ft.vmap(fnp.sin, in_axes=(0, 0))(X3), "in_axes"),
    "in_axes_out_of_range": (lambda: ft.vmap(fnp.sin, in_axes=1)(X3), "in_axes|axis"),
    "batch_sizes": (lambda: ft.vmap(two)(X3, jnp.ones(4)), r"size"),
}


@needs("vmap")
@pytest.mark.parametrize("case", list(BAD_VMAP))
def test_wrong_vmap_arguments(case):
    run, word = BAD_VMAP[case]
    with pytest.raises(ValueError, match=word):
        run()


@pytest.mark.parametrize("api", [pytest.param("jit", marks=needs("jit")), "make_graph"])
def test_wrong_static_argnums(api):
    with pytest.raises(ValueError, match="static_argnums"):
        getattr(ft, api)(two, static_argnums=(2,))(X3, X3)


NO_BROADCAST = {
    "add": lambda: fnp.add(jnp.ones(3), jnp.ones(4)),
    "operator": lambda: ft.grad(lambda x: fnp.sum(x * jnp.ones(4)))(X3),
    "where": lambda: fnp.where(jnp.ones(3) > 0, jnp.ones(3), jnp.ones(4)),
    "inside_grad": lambda: ft.grad(lambda x: fnp.sum(fnp.maximum(x, fnp.ones(4))))(X3),
    "inside_jvp": lambda: ft.jvp(lambda x: fnp.arctan2(x, fnp.ones(4)), (X3,), (X3,)),
    "inside_vjp_of_vjp": lambda: ft.grad(
        lambda x: fnp.sum(ft.vjp(lambda y: y * x, X3)[1](jnp.ones(3))[0] + jnp.ones(4))
    )(X3),
}


@pytest.mark.parametrize("case", list(NO_BROADCAST))
def test_shapes_that_do_not_broadcast(case):
    with pytest.raises(ValueError, match="broadcast") as excinfo:
        NO_BROADCAST[case]()
    assert_mentions(excinfo, "3", "4")
