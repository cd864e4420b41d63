"""The transformations themselves: nesting, pytrees, options, and interplay with JAX.

Every program is written once against a transformation namespace `T`, which is either the
`functrans` module or the `jax` module: both offer `T.grad`, `T.jvp`, `T.vjp`,
`T.value_and_grad`, `T.linearize`, `T.numpy`, `T.nn` and `T.lax.stop_gradient`. The same
program run with `jax` is the oracle.
"""

import functools
import itertools
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import functrans as ft
import functrans.lax  # noqa: F401  (makes `ft.lax` an attribute, as `jax.lax` is)
import functrans.nn  # noqa: F401
import functrans.numpy  # noqa: F401
from conftest import assert_close, assert_jax_arrays

Point = namedtuple("Point", ["x", "y"])

# ---------------------------------------------------------------------------------------------
# Scalar functions for nesting, each written once against `T`.

_DATA = np.random.RandomState(1)
X_DATA = _DATA.standard_normal((4, 2))
Y_DATA = _DATA.standard_normal(4)
W1, D1 = _DATA.standard_normal((2, 3)), _DATA.standard_normal((2, 3))
B1 = _DATA.standard_normal(3)
W2, D2 = _DATA.standard_normal(3), _DATA.standard_normal(3)


def tanh(T, x):
    return T.numpy.tanh(x)


def sin_exp(T, x):
    return T.numpy.sin(x) * T.numpy.exp(x)


def rational(T, x):
    return (x**3 - 2.0 * x + 1.0) / (x**2 + 1.5)


def mlp_loss(T, s):
    """A two-layer MLP's squared error, along the line `W + s * D` in weight space."""
    np_ = T.numpy
    hidden = np_.tanh(np_.dot(X_DATA, W1 + s * D1) + B1)
    return np_.mean((hidden @ (W2 + s * D2) - Y_DATA) ** 2)


def stopped(T, x):
    """Uses `stop_gradient` so that every order of its derivative differs from the plain one."""
    sg = T.lax.stop_gradient
    return x**2 * sg(x**3) + T.numpy.sin(sg(x) * x) + sg(T.numpy.exp(x)) * x**3


FUNCTIONS = {f.__name__: f for f in (tanh, sin_exp, rational, mlp_loss, stopped)}

WORDS = [w for n in range(1, 5) for w in itertools.product(("fwd", "rev"), repeat=n)]


def nest(T, f, word):
    """Applies `word` to scalar `f`, innermost first: fwd is a jvp with unit tangent, rev is grad."""
    for letter in word:
        if letter == "fwd":
            f = (lambda g: lambda x: T.jvp(g, (x,), (T.numpy.ones_like(x),))[1])(f)
        else:
            f = T.grad(f)
    return f


X0 = jnp.asarray(0.7)


@functools.cache
def _nested_reference(fname):
    fun = functools.partial(FUNCTIONS[fname], jax)
    # One compilation per word length: cheaper than one per word or one for all words.
    reference = {}
    for n in range(1, 5):
        words = [w for w in WORDS if len(w) == n]
        reference.update(jax.jit(lambda x: {w: nest(jax, fun, w)(x) for w in words})(X0))
    return reference


@pytest.mark.parametrize("word", WORDS, ids=["-".join(w) for w in WORDS])
@pytest.mark.parametrize("fname", list(FUNCTIONS))
def test_nested_words(fname, word):
    actual = nest(ft, functools.partial(FUNCTIONS[fname], ft), word)(X0)
    assert_jax_arrays(actual)
    assert_close(actual, _nested_reference(fname)[word])


def test_grad_order_6_tanh():
    def nth(T):
        f = T.numpy.tanh
        for _ in range(6):
            f = T.grad(f)
        return f

    x = jnp.asarray(0.3)
    assert_close(nth(ft)(x), jax.jit(nth(jax))(x))


# ---------------------------------------------------------------------------------------------
# Perturbation confusion: nested transformations must keep their perturbations apart.

CONFUSION = {
    # d/dx [x * d/dy (x + y)] = d/dx [x] = 1
    "grad_grad": (lambda T: T.grad(lambda x: x * T.grad(lambda y: x + y)(1.0))(1.0), 1.0),
    "jvp_jvp": (
        lambda T: T.jvp(lambda x: x * T.jvp(lambda y: x + y, (1.0,), (1.0,))[1], (1.0,), (1.0,))[1],
        1.0,
    ),
    "grad_jvp": (
        lambda T: T.grad(lambda x: x * T.jvp(lambda y: x + y, (1.0,), (1.0,))[1])(1.0),
        1.0,
    ),
    "jvp_grad": (
        lambda T: T.jvp(lambda x: x * T.grad(lambda y: x + y)(1.0), (1.0,), (1.0,))[1],
        1.0,
    ),
    # d/dx [x * d/dy (x * y)] at y = 2, x = 3: d/dx [x * x] = 6
    "grad_grad_product": (lambda T: T.grad(lambda x: x * T.grad(lambda y: x * y)(2.0))(3.0), 6.0),
    "jvp_jvp_product": (
        lambda T: T.jvp(lambda x: x * T.jvp(lambda y: x * y, (2.0,), (1.0,))[1], (3.0,), (1.0,))[1],
        6.0,
    ),
    # The inner function closes over x and is evaluated at it: d/dx [2 x y at y = x] = 4 x.
    "grad_grad_shared_point": (
        lambda T: T.grad(lambda x: T.grad(lambda y: x * y**2)(x))(1.5),
        4.0 * 1.5,
    ),
    "vjp_vjp": (
        lambda T: T.vjp(lambda x: x * T.vjp(lambda y: x * y, 2.0)[1](1.0)[0], 3.0)[1](1.0)[0],
        6.0,
    ),
}


@pytest.mark.parametrize("name", list(CONFUSION))
def test_perturbation_confusion(name):
    program, expected = CONFUSION[name]
    actual = program(ft)
    assert_jax_arrays(actual)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    assert_close(actual, program(jax))


# ---------------------------------------------------------------------------------------------
# Pytrees in and out.


def tree_loss(T, params):
    np_ = T.numpy
    w, (b, c, nothing), p = params["w"], params["list"], params["point"]
    assert nothing is None
    return np_.sum(np_.tanh(w @ b)) * c + np_.sum(p.x * np_.sin(p.y)) + np_.prod(c + p.x)


def tree_fn(T, params):
    np_ = T.numpy
    w, (b, c, _), p = params["w"], params["list"], params["point"]
    return {
        "a": np_.tanh(w @ b) * c,
        "b": [np_.sin(p.x) * p.y, None, (c**2,)],
        "c": Point(x=p.x * c, y=np_.exp(w).sum(axis=0)),
    }


def make_params(rng):
    return {
        "w": jnp.asarray(rng.standard_normal((3, 2))),
        "list": [jnp.asarray(rng.standard_normal(2)), jnp.asarray(0.4), None],
        "point": Point(
            x=jnp.asarray(rng.standard_normal(2)), y=jnp.asarray(rng.standard_normal(2))
        ),
    }


def random_like(rng, tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.standard_normal(np.shape(a))), tree)


PYTREE_PROGRAMS = {
    "grad": lambda T, p, t, ct: T.grad(functools.partial(tree_loss, T))(p),
    "value_and_grad": lambda T, p, t, ct: T.value_and_grad(functools.partial(tree_loss, T))(p),
    "jvp": lambda T, p, t, ct: T.jvp(functools.partial(tree_fn, T), (p,), (t,)),
    "vjp": lambda T, p, t, ct: (lambda out, f_vjp: (out, f_vjp(ct)))(
        *T.vjp(functools.partial(tree_fn, T), p)
    ),
    "grad_of_grad_sum": lambda T, p, t, ct: T.grad(
        lambda q: T.numpy.sum(
            T.numpy.stack(
                [
                    T.numpy.sum(g**2)
                    for g in jax.tree_util.tree_leaves(T.grad(functools.partial(tree_loss, T))(q))
                ]
            )
        )
    )(p),
    "jvp_of_grad": lambda T, p, t, ct: T.jvp(T.grad(functools.partial(tree_loss, T)), (p,), (t,)),
    "linearize": lambda T, p, t, ct: (lambda out, f_jvp: (out, f_jvp(t)))(
        *T.linearize(functools.partial(tree_fn, T), p)
    ),
}


@pytest.mark.parametrize("program", list(PYTREE_PROGRAMS))
def test_pytrees(program, rng):
    params = make_params(rng)
    tangents = random_like(rng, params)
    ct = random_like(rng, jax.eval_shape(functools.partial(tree_fn, jax), params))
    actual = PYTREE_PROGRAMS[program](ft, params, tangents, ct)
    assert_jax_arrays(actual)
    assert_close(actual, PYTREE_PROGRAMS[program](jax, params, tangents, ct))


def test_grad_accepts_numpy_and_python_inputs():
    f = lambda T, x, y, z: T.numpy.sum(T.numpy.sin(x) * y) * z
    args = (np.linspace(0.1, 1.0, 3), np.array([1.0, 2.0, 3.0]), 2.0)
    actual = ft.grad(functools.partial(f, ft), argnums=(0, 1, 2))(*args)
    assert_jax_arrays(actual)
    assert_close(actual, jax.grad(functools.partial(f, jax), argnums=(0, 1, 2))(*args))


# ---------------------------------------------------------------------------------------------
# Options: argnums, has_aux, allow_int.


def three_args(T, x, y, z):
    np_ = T.numpy
    return np_.sum(np_.sin(x) * y**2) + np_.sum(np_.exp(z) * x[0]) * np_.sum(y)


ARGNUMS = [0, 1, 2, -1, -3, (0, 2), (2, 0), (-1, 1), (0, 1, 2)]


@pytest.mark.parametrize("argnums", ARGNUMS, ids=str)
@pytest.mark.parametrize("transform", ["grad", "value_and_grad"])
def test_argnums(transform, argnums, rng):
    args = tuple(jnp.asarray(rng.standard_normal(3)) for _ in range(3))
    run = lambda T: getattr(T, transform)(functools.partial(three_args, T), argnums=argnums)(*args)
    actual = run(ft)
    assert_jax_arrays(actual)
    assert_close(actual, run(jax))


def with_aux(T, x):
    np_ = T.numpy
    y = np_.sin(x) * x
    return np_.sum(y**2), {"y": y, "norm": [np_.sqrt(np_.sum(x**2))]}


def with_aux_vector(T, x):
    y = T.numpy.sin(x) * x
    return T.numpy.exp(y), (y, T.numpy.max(x))


HAS_AUX_PROGRAMS = {
    "grad": lambda T, x, t: T.grad(functools.partial(with_aux, T), has_aux=True)(x),
    "value_and_grad": lambda T, x, t: T.value_and_grad(
        functools.partial(with_aux, T), has_aux=True
    )(x),
    "vjp": lambda T, x, t: (lambda out, f_vjp, aux: (out, f_vjp(t), aux))(
        *T.vjp(functools.partial(with_aux_vector, T), x, has_aux=True)
    ),
    "jvp": lambda T, x, t: T.jvp(functools.partial(with_aux_vector, T), (x,), (t,), has_aux=True),
    # has_aux inside another grad: the aux output of the inner grad is a value of the outer.
    "grad_of_grad_aux": lambda T, x, t: T.grad(
        lambda x: (lambda g, aux: T.numpy.sum(g * aux["y"]))(
            *T.grad(functools.partial(with_aux, T), has_aux=True)(x)
        )
    )(x),
}


@pytest.mark.parametrize("program", list(HAS_AUX_PROGRAMS))
def test_has_aux(program, rng):
    x, t = (jnp.asarray(rng.standard_normal(3)) for _ in range(2))
    actual = HAS_AUX_PROGRAMS[program](ft, x, t)
    assert_jax_arrays(actual)
    assert_close(actual, HAS_AUX_PROGRAMS[program](jax, x, t))


ALLOW_INT_ARGS = {
    "python_int": (2.0, 3),
    "int_array": (jnp.asarray([1.0, 2.0, 3.0]), jnp.asarray([1, 2, 3])),
    "bool_array": (jnp.asarray([1.0, 2.0]), jnp.asarray([True, False])),
}


@pytest.mark.parametrize("transform", ["grad", "value_and_grad"])
@pytest.mark.parametrize("args", list(ALLOW_INT_ARGS))
def test_allow_int(args, transform):
    f = lambda T, x, n: T.numpy.sum(T.numpy.sin(x) * n)
    run = lambda T: getattr(T, transform)(functools.partial(f, T), argnums=(0, 1), allow_int=True)(
        *ALLOW_INT_ARGS[args]
    )
    actual, expected = run(ft), run(jax)
    assert_close(actual, expected)
    float0_leaf = jax.tree_util.tree_leaves(actual)[-1]
    assert float0_leaf.dtype == jax.dtypes.float0


# ---------------------------------------------------------------------------------------------
# linearize


def two_args(T, x, y):
    return T.numpy.tanh(x * y) + T.numpy.sin(x) ** 2 / (1.0 + y**2)


@pytest.mark.parametrize("order", [1, 2])
def test_linearize(order, rng):
    x, y = (jnp.asarray(rng.standard_normal(3)) for _ in range(2))
    tangents = [tuple(jnp.asarray(rng.standard_normal(3)) for _ in range(2)) for _ in range(3)]

    def run(T):
        f = functools.partial(two_args, T)
        if order == 2:  # linearize the gradient of a scalar function of (x, y)
            f = T.grad(lambda x, y, f=f: T.numpy.sum(f(x, y) ** 2), argnums=(0, 1))
        out, f_jvp = T.linearize(f, x, y)
        return out, [f_jvp(*t) for t in tangents]

    actual = run(ft)
    assert_jax_arrays(actual)
    assert_close(actual, run(jax))


# ---------------------------------------------------------------------------------------------
# stop_gradient: every order, and the two public names.


def test_stop_gradient_public_names():
    assert ft.stop_gradient(jnp.asarray(2.0)) == 2.0
    f = lambda sg: lambda x: x**2 * sg(x**3) + sg(x) * x
    for sg in (ft.stop_gradient, ft.lax.stop_gradient):
        actual = ft.grad(ft.grad(f(sg)))(1.3)
        assert_close(actual, jax.grad(jax.grad(f(jax.lax.stop_gradient)))(1.3))


STOP_GRADIENT_PROGRAMS = {
    # A stopped inner gradient is a constant for the outer one.
    "outer_of_stopped_inner": lambda T, x: T.grad(
        lambda x: x * T.lax.stop_gradient(T.grad(lambda y: y**3 * x)(x))
    )(x),
    # The inner gradient of a stopped value is zero at every order.
    "grad_grad_of_stopped": lambda T, x: T.grad(T.grad(lambda x: T.lax.stop_gradient(x**4) + x))(x),
    "jvp_of_grad_stopped_tree": lambda T, x: T.jvp(
        T.grad(lambda p: T.numpy.sum(p["a"] ** 2 * T.lax.stop_gradient(p)["b"] ** 3)),
        ({"a": x, "b": x + 1.0},),
        ({"a": T.numpy.ones_like(x), "b": T.numpy.ones_like(x)},),
    ),
    "stop_inside_jvp_of_jvp": lambda T, x: T.jvp(
        lambda x: T.jvp(lambda y: y * T.lax.stop_gradient(y * x), (x,), (1.0,))[1], (x,), (1.0,)
    ),
}


@pytest.mark.parametrize("program", list(STOP_GRADIENT_PROGRAMS))
def test_stop_gradient_nested(program):
    x = jnp.asarray(1.3)
    actual = STOP_GRADIENT_PROGRAMS[program](ft, x)
    assert_jax_arrays(actual)
    assert_close(actual, STOP_GRADIENT_PROGRAMS[program](jax, x))


# ---------------------------------------------------------------------------------------------
# Python control flow on concrete values inside grad (as JAX allows).


def branchy(T, x):
    if x > 0:
        y = x**3
    else:
        y = T.numpy.sin(x) * x
    while y < 10.0:  # concrete condition: a Python loop, unrolled
        y = y * 2.0 + x**2
    return y


CONTROL_PROGRAMS = {
    "grad": lambda T, x: T.grad(functools.partial(branchy, T))(x),
    "grad_grad": lambda T, x: T.grad(T.grad(functools.partial(branchy, T)))(x),
    "jvp": lambda T, x: T.jvp(functools.partial(branchy, T), (x,), (1.0,)),
    "jvp_of_grad": lambda T, x: T.jvp(T.grad(functools.partial(branchy, T)), (x,), (1.0,)),
    "vjp": lambda T, x: (lambda out, f_vjp: (out, f_vjp(1.0)))(
        *T.vjp(functools.partial(branchy, T), x)
    ),
}


@pytest.mark.parametrize("x", [1.5, -1.5])
@pytest.mark.parametrize("program", list(CONTROL_PROGRAMS))
def test_python_control_flow(program, x):
    x = jnp.asarray(x)
    actual = CONTROL_PROGRAMS[program](ft, x)
    assert_jax_arrays(actual)
    assert_close(actual, CONTROL_PROGRAMS[program](jax, x))


# ---------------------------------------------------------------------------------------------
# JAX transformations around functrans ones.


def vector_loss(T, x):
    np_ = T.numpy
    return np_.sum(T.nn.softplus(x) * np_.sin(x)) + np_.prod(np_.cos(x))


def test_jax_jit_of_grad(rng):
    x = jnp.asarray(rng.standard_normal(4))
    actual = jax.jit(ft.grad(functools.partial(vector_loss, ft)))(x)
    assert_jax_arrays(actual)
    assert_close(actual, jax.grad(functools.partial(vector_loss, jax))(x))


def test_jax_vmap_of_grad(rng):
    xs = jnp.asarray(rng.standard_normal((5, 4)))
    actual = jax.vmap(ft.grad(functools.partial(vector_loss, ft)))(xs)
    assert_jax_arrays(actual)
    assert_close(actual, jax.vmap(jax.grad(functools.partial(vector_loss, jax)))(xs))


@pytest.mark.parametrize("outer", ["grad", "jvp", "grad_of_grad"])
def test_jax_transform_of_ft_grad(outer):
    inner = {T: T.grad(functools.partial(sin_exp, T)) for T in (ft, jax)}
    outer_fn = {
        "grad": lambda g: jax.grad(g)(0.7),
        "jvp": lambda g: jax.jvp(g, (0.7,), (1.0,)),
        "grad_of_grad": lambda g: jax.grad(jax.grad(g))(0.7),
    }[outer]
    actual = outer_fn(inner[ft])
    assert_jax_arrays(actual)
    assert_close(actual, outer_fn(inner[jax]))


def penalized_loss(T, params, x, y):
    """An MLP's squared error plus a gradient penalty on its inputs (double backprop)."""
    np_ = T.numpy

    def predict(params, x):
        return np_.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]

    mse = np_.mean((predict(params, x) - y) ** 2)
    input_grad = T.grad(lambda x: np_.sum(predict(params, x)))(x)
    return mse + 0.1 * np_.mean(input_grad**2)


def test_jax_jit_optax_step(rng):
    params = {
        "w1": jnp.asarray(rng.standard_normal((2, 3))),
        "b1": jnp.asarray(rng.standard_normal(3)),
        "w2": jnp.asarray(rng.standard_normal(3)),
    }
    x, y = jnp.asarray(rng.standard_normal((5, 2))), jnp.asarray(rng.standard_normal(5))
    opt = optax.adam(1e-2)

    def train(T):
        @jax.jit
        def step(params, opt_state):
            loss = penalized_loss(T, params, x, y)
            grads = T.grad(functools.partial(penalized_loss, T))(params, x, y)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        p, state, losses = params, opt.init(params), []
        for _ in range(3):
            p, state, loss = step(p, state)
            losses.append(loss)
        return p, state, losses

    actual = train(ft)
    assert_jax_arrays(actual)
    assert_close(actual, train(jax))
