"""`jax.Array` methods on functrans values, and the sorting and statistics functions behind them.

The functions (`sort`, `argsort`, `take_along_axis`, `cumprod`, `repeat`, `ptp`,
`searchsorted`, `nonzero`, `copy`, `median`, `quantile`, `percentile`, the `nan*`
reductions) are written once as a function of an array namespace `np_` and run with
`functrans.numpy` and with `jax.numpy`: values and dtypes, Jacobians in both modes, a few
Hessians and `vmap` are compared in float64 (`conftest.py` enables x64). Inputs hold ties
(sort, median, ptp), exact zeros (cumprod) and NaNs (the `nan*` reductions), where a wrong
derivative rule would show.

The methods are then called on every kind of functrans traced value: `ft.jit` and
`ft.make_graph` (graph tracers), `ft.grad` (reverse mode), `ft.jvp` (forward mode) and
`ft.vmap` (batching), each against the same code run by JAX on `jax.Array`s. Their
signatures are checked against `jax.Array`'s.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close
from functrans._src import lazy
from functrans._src.core import Tracer

NAN = float("nan")
X = jnp.array([[3.0, 1.0, 2.0, 2.0], [0.5, 5.0, -1.0, 5.0]])  # a tie in each row
Z = jnp.array([[2.0, 0.0, 3.0, 0.0], [1.5, -2.0, 0.5, 4.0]])  # exact zeros, two in a row
N = jnp.array([[1.0, NAN, 3.0, -2.0], [NAN, NAN, NAN, NAN]])  # NaNs, a row of them only
X3 = jnp.array(np.random.RandomState(0).standard_normal((2, 3, 4)))
Q = jnp.array([0.0, 0.3, 0.5, 0.75, 1.0])  # hits entries exactly (0, 0.5, 1) and between
SORTED = jnp.array([-1.0, 0.5, 2.0, 2.0, 7.0, NAN])
QUERIES = jnp.array([[2.0, -3.0, 0.5], [9.0, NAN, 1.0]])
OUT_OF_RANGE = np.array([[0, -1, 5, 2]])  # 5 is past the end: filled (or clipped)

METHODS = ("linear", "lower", "higher", "nearest", "midpoint")

# name -> (fun(np_, x), input). Every case is differentiable in x; related calls share a
# case (one compilation each).
DIFFERENTIABLE = {
    "sort": (
        lambda np_, x: (
            np_.sort(x),
            np_.sort(x, axis=0, descending=True),
            np_.sort(x, axis=None, descending=True),
        ),
        X,
    ),
    "take_along_axis": (
        lambda np_, x: (
            np_.take_along_axis(x, np_.argsort(x, axis=1), axis=1) * x,
            np_.take_along_axis(x, OUT_OF_RANGE, axis=1),  # NaN past the end
            np_.take_along_axis(x, OUT_OF_RANGE, axis=1, fill_value=-7.0),
            np_.take_along_axis(x, OUT_OF_RANGE, axis=1, mode="clip"),
            np_.take_along_axis(x, np.array([[1], [0], [1]]), axis=0),  # broadcast columns
            np_.take_along_axis(x, np.array([7, 0, 0, 3]), axis=None),
        ),
        X,
    ),
    "cumprod": (
        lambda np_, x: (np_.cumprod(x, axis=1), np_.cumprod(x.T, axis=0), np_.cumprod(x)),
        Z,
    ),
    "repeat": (
        lambda np_, x: (
            np_.repeat(x, 2, axis=1),
            np_.repeat(x, np.array([1, 0, 2, 1]), axis=1),
            np_.repeat(x, 3),
            np_.repeat(x, np.array([2, 1]), axis=0, total_repeat_length=4),  # padded
            np_.repeat(x, np.array([1, 0, 2, 0]), axis=1, total_repeat_length=2),  # cut
            np_.repeat(x, 2, axis=1, total_repeat_length=5),
        ),
        X,
    ),
    "median_ptp_copy": (
        lambda np_, x: (
            np_.median(x),
            np_.median(x, axis=1),
            np_.median(x, axis=0, keepdims=True),
            np_.median(np_.where(np_.isnan(N), NAN, x), axis=1),  # a NaN row's median is NaN
            np_.ptp(x),
            np_.ptp(x, axis=1, keepdims=True),
            np_.copy(x) * x,
        ),
        X,
    ),
    "quantile_percentile": (
        lambda np_, x: (
            tuple(np_.quantile(x, Q, axis=1, method=m) for m in METHODS)
            + (np_.quantile(x, 0.4, keepdims=True),)
            + (np_.percentile(x, np.array([10.0, 50.0, 95.0]), axis=0),)
            + (np_.percentile(x, 30, axis=1, method="nearest"),)
        ),
        X,
    ),
    "quantile_axes": (
        lambda np_, x: (
            np_.quantile(x, 0.3, axis=(0, 2)),
            np_.quantile(x, Q, axis=(2, 0), keepdims=True, method="midpoint"),
        ),
        X3,
    ),
    "nan_reductions": (
        lambda np_, x: (
            np_.nansum(x, axis=1, keepdims=True),
            np_.nanprod(x, axis=0),
            np_.nanmean(x, axis=1),  # 0/0 in the NaN row: JAX's jacfwd is NaN there, jacrev 0
            np_.nanmax(x),
            np_.nanmax(x, axis=1),
            np_.nanmin(x, axis=1, keepdims=True),
        ),
        N,
    ),
}

# Integer and boolean results (no derivative): values and dtypes only.
INTEGER = {
    "argsort": (
        lambda np_, x: (
            np_.argsort(x),
            np_.argsort(x, axis=0),
            np_.argsort(x, axis=None, descending=True),  # ties keep their order
            np_.argsort(x, descending=True, stable=False),
        ),
        X,
    ),
    "searchsorted": (
        lambda np_, x: (
            tuple(
                np_.searchsorted(SORTED, x, side=side, method=method)
                for side in ("left", "right")
                for method in ("scan", "compare_all", "sort")
            )
            + (np_.searchsorted(x[1], 2.5, sorter=np.array([1, 2, 0])),)
        ),
        QUERIES,
    ),
    "nonzero": (
        lambda np_, x: (
            np_.nonzero(x, size=2),
            np_.nonzero(x, size=8, fill_value=(-1, 9)),
            np_.nonzero(x[0], size=3, fill_value=-1),
        ),
        Z,
    ),
    "all_any": (
        lambda np_, x: (
            np_.all(x > 0, axis=1),
            np_.all(x > 0, where=x > 1),
            np_.any(x > 4, axis=0, keepdims=True, where=x < 4),
        ),
        X,
    ),
    "integer_dtypes": (
        lambda np_, x: (
            tuple(
                f(x.astype(dtype))
                for dtype in (np.int8, np.bool_)
                for f in (np_.cumprod, np_.sort, np_.nansum, lambda v: np_.repeat(v, 2))
            )
            + (np_.median(x), np_.quantile(x.astype(np.int32), 0.3), np_.nanmean(x))
        ),
        jnp.array([[1, 0, 2], [3, 1, 1]]),
    ),
    "take_along_axis_int": (
        lambda np_, x: np_.take_along_axis(x, np.array([4, -2, -5]), axis=0),
        jnp.arange(4),
    ),
}


def _pair(fun):
    return (lambda x: fun(fnp, x)), (lambda x: fun(jnp, x))


# JAX's answers come from one `jax.jit` per case, functrans' from one `ft.jit` (one compiled
# graph rather than one XLA compilation per primitive and shape keeps the file fast; the eager
# tests further down run the same rules op by op).
@functools.cache
def _expected(name):
    fun, x = {**DIFFERENTIABLE, **INTEGER}[name]
    f = _pair(fun)[1]
    if name in INTEGER:
        return f(x)
    return jax.jit(lambda x: {"value": f(x), "rev": jax.jacrev(f)(x), "fwd": jax.jacfwd(f)(x)})(x)


@pytest.mark.parametrize("name", list(INTEGER))
def test_integer_results_match_jax(name):
    fun, x = INTEGER[name]
    assert_close(ft.jit(_pair(fun)[0])(x), _expected(name))


@pytest.mark.parametrize("name", list(DIFFERENTIABLE))
def test_values_and_jacobians_match_jax(name):
    fun, x = DIFFERENTIABLE[name]
    f = _pair(fun)[0]
    got = ft.jit(lambda x: {"value": f(x), "rev": ft.jacrev(f)(x), "fwd": ft.jacfwd(f)(x)})(x)
    assert_close(got, _expected(name))


# Scalar losses for second derivatives: the Hessian of a sort-based loss is not zero because
# the sorted values are multiplied together or fed to a nonlinear function.
HESSIANS = {
    "quantile": lambda np_, x: np_.sum(np_.quantile(x, Q, axis=1) ** 2),
    "sort": lambda np_, x: np_.sum(np_.sin(np_.sort(x, axis=0)) * X),
    "median_ptp": lambda np_, x: np_.median(x) ** 3 + np_.median(x, axis=0)[1] * np_.ptp(x),
    "cumprod_at_zeros": lambda np_, x: np_.sum(np_.cumprod(x, axis=1) * X),
}


@pytest.mark.parametrize("name", list(HESSIANS))
def test_hessians_match_jax(name):
    f_ft, f_jax = _pair(HESSIANS[name])
    x = Z if name.startswith("cumprod") else X
    assert_close(ft.jit(ft.hessian(f_ft))(x), jax.jit(jax.hessian(f_jax))(x))


def test_quantile_derivative_in_q_matches_jax():
    q = jnp.array([0.1, 0.45, 0.8])  # between entries: the interpolation weight moves with q
    loss = lambda np_: lambda q: np_.sum(np_.quantile(X, q, axis=1) ** 2)
    assert_close(ft.grad(loss(fnp))(q), jax.grad(loss(jnp))(q))
    pct = lambda np_: lambda q: np_.sin(np_.percentile(X, q, axis=0))
    assert_close(ft.jit(ft.jacfwd(pct(fnp)))(q * 100), jax.jit(jax.jacfwd(pct(jnp)))(q * 100))


def test_cumprod_at_zeros_is_exact():
    # d cumprod(x)[-1] / dx_i is the product of the other entries: nonzero only at the zero
    g = ft.grad(lambda x: fnp.cumprod(x)[-1])(jnp.array([2.0, 0.0, 3.0, 5.0]))
    assert_close(g, jnp.array([0.0, 30.0, 0.0, 0.0]))


VMAPS = {
    "sort": (lambda np_: lambda x: np_.sort(x, descending=True), (X,), 0),
    "argsort": (lambda np_: lambda x: np_.argsort(x), (X,), 1),
    "quantile_q": (lambda np_: lambda q: np_.quantile(X, q, axis=1), (Q,), 0),
    "median": (lambda np_: lambda x: np_.median(x), (X3,), 2),
    "searchsorted": (
        lambda np_: lambda a, v: np_.searchsorted(a, v, side="right"),
        (jnp.sort(X, axis=1), X[:, :3]),
        0,
    ),
    "cumprod": (lambda np_: lambda x: np_.cumprod(x), (Z,), 1),
    "repeat": (lambda np_: lambda x: np_.repeat(x, np.array([0, 2, 1, 1])), (X,), 0),
    "take_along_axis": (
        lambda np_: lambda x, i: np_.take_along_axis(x, i, axis=0),
        (X, jnp.array([[3, 1], [0, 5]])),
        0,
    ),
    "nonzero_size": (lambda np_: lambda x: np_.nonzero(x, size=3, fill_value=-1), (Z,), 0),
}


EAGER_VMAPS = {"sort", "quantile_q"}  # the others under `ft.jit`, compiled once


@pytest.mark.parametrize("name", list(VMAPS))
def test_vmap_matches_jax(name):
    make, args, axis = VMAPS[name]
    batched = ft.vmap(make(fnp), axis)
    batched = batched if name in EAGER_VMAPS else ft.jit(batched)
    assert_close(batched(*args), jax.jit(jax.vmap(make(jnp), axis))(*args))


# ---------------------------------------------------------------------------------------------
# Methods on every kind of traced value. Each case calls methods only, so the same function
# runs on a functrans tracer and on a `jax.Array`.

METHOD_CASES = {
    "sorting": (
        lambda x: (
            x.sort(),
            x.sort(axis=0, descending=True),
            x.argsort(axis=0, descending=True),
            x[0].sort().searchsorted(x[1], side="right"),
            x.take(np.array([3, 0, -1, 7]), axis=1, mode="clip"),
            x.take(np.array([3, 7]), fill_value=0.25),
        ),
        X,
    ),
    "statistics": (
        lambda x: (x.ptp(axis=1), x.cumprod(axis=1), x.cumsum(), (x * 1.37).round(1)),
        Z,
    ),
    "logical": (
        lambda x: (
            x.all(axis=1, keepdims=True),
            (x > 2.5).any(0),
            x.nonzero(size=5, fill_value=-1),
        ),
        Z,
    ),
    "structural": (
        lambda x: (
            x.mT,
            x.swapaxes(0, 2),
            x.diagonal(offset=1),
            x.trace(offset=1),
            x.repeat(2, axis=0),
            x.copy() * x.conjugate(),
            x.flatten(order="C"),
            x.ravel(),
            x.astype(jnp.float32, copy=True),
            x * (x.itemsize + x.nbytes),
        ),
        X3,
    ),
    # existing methods, called with JAX's positional order and keywords
    "reductions": (
        lambda x: (
            x.sum(1, None),
            x.max(0, keepdims=True, initial=2.5),
            x.min(axis=1, where=x > 0, initial=9.0),
            x.mean(0, None),
            x.prod(1, None, keepdims=True),
            x.var(0, ddof=1),
            x.std(axis=1, correction=1, keepdims=True),
            x.argmax(1, keepdims=True),
            x.argmin(axis=None),
            x.dot(x.T, precision="highest"),
        ),
        X,
    ),
}


def _loss(np_, f):
    # every output summed (integer ones cast to float: their derivative is zero in both)
    leaves = lambda x: jax.tree_util.tree_leaves(f(x))
    return lambda x: sum(np_.sum(np_.sin(np_.asarray(v, np.float64))) for v in leaves(x))


def _all_kinds(T, np_, f):
    """`f` on a graph tracer, reverse and forward mode tracers and a batch tracer."""
    return lambda x, t: {
        "value": f(x),
        "grad": T.grad(_loss(np_, f))(x),
        "jvp": T.jvp(f, (x,), (t,))[1],
        "vmap": T.vmap(f)(np_.stack([x, 2.0 * x - 1.0])),
    }


@pytest.mark.parametrize("name", list(METHOD_CASES))
def test_methods_on_every_traced_value_match_jax(name):
    f, x = METHOD_CASES[name]
    t = jnp.cos(x)
    want = jax.jit(_all_kinds(jax, jnp, f))(x, t)
    got = ft.jit(_all_kinds(ft, fnp, f))(x, t)
    assert_close(got, want)  # integer outputs' tangents: float0 on both sides
    graph = ft.make_graph(f)(x)
    assert_close(jax.jit(graph.to_jax())(x), want["value"])
    assert_close(graph.simplify()(x), want["value"])  # the same primitives: no new compilation


# Parameters that only concern JAX's sharding or integer promotion (not offered here).
_JAX_ONLY = {"out_sharding", "promote_integers"}
SIGNATURES = [
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "conjugate", "copy",
    "cumprod", "cumsum", "diagonal", "dot", "flatten", "item", "max", "mean", "min",
    "nonzero", "prod", "ptp", "ravel", "repeat", "round", "searchsorted", "sort", "squeeze",
    "std", "sum", "swapaxes", "take", "trace", "var",
]  # fmt: skip


def _params(fun):
    out = []
    for p in inspect.signature(fun).parameters.values():
        if p.name in _JAX_ONLY:
            continue
        default = None if p.name == "out" else p.default  # `out` refuses NumPy's calls
        name = "*" if p.kind is p.VAR_POSITIONAL else p.name
        out.append((name, p.kind, default))
    return out


@pytest.mark.parametrize("name", SIGNATURES)
def test_method_signatures_match_jax_array(name):
    assert _params(getattr(Tracer, name)) == _params(getattr(jax.Array, name))


def test_mT_needs_two_axes():
    assert ft.jit(lambda x: x.mT)(X).shape == (4, 2)
    with pytest.raises(ValueError, match=r"`\.mT`.*2 dimensions"):
        ft.jit(lambda x: x.mT)(X[0])


# ---------------------------------------------------------------------------------------------
# Values that must be concrete: `item`, `nonzero` without `size`, traced `repeats`.


@pytest.fixture
def lazy_mode(monkeypatch):
    monkeypatch.setattr(lazy, "enabled", True)


def test_item_of_concrete_values(lazy_mode):
    # In compiled eager mode a count is a lazy functrans value with a concrete value.
    # (`(x > 1.5).sum()` has no derivative: a concrete count even inside `grad`)
    f = lambda np_: lambda x: np_.sum(x) * (x > 1.5).sum().item()
    assert_close(ft.grad(f(fnp))(X), jax.grad(f(jnp))(X))


def test_item_of_lazy_value_takes_an_index(lazy_mode):
    seen = []
    ft.grad(lambda x: seen.append((x > 1.5).astype(int).item(1, 3)) or fnp.sum(x))(X)
    assert seen == [1]


ITEM_OF_ABSTRACT = {
    "jit": (lambda f: ft.jit(f)(X[0, 0]), r"`item` was called .* abstract"),
    "vmap": (lambda f: ft.vmap(f)(X[0]), r"`item\(\)` was called .* batch"),
    "grad": (lambda f: ft.grad(f)(X[0, 0]), r"`item\(\)` was called .* differentiating"),
}


@pytest.mark.parametrize("transform", list(ITEM_OF_ABSTRACT))
def test_item_of_abstract_value_raises(transform):
    run, match = ITEM_OF_ABSTRACT[transform]
    with pytest.raises(TypeError, match=match):
        run(lambda x: x.item() * x)


def test_nonzero_without_size_needs_concrete_values():
    assert_close(fnp.nonzero(Z), jnp.nonzero(Z))
    assert_close(Z.nonzero(), jnp.nonzero(Z))
    f = lambda np_: lambda x: np_.sum(x[x.nonzero()] ** 2)
    assert_close(ft.grad(f(fnp))(Z), jax.grad(f(jnp))(Z))  # the mask of an eager grad
    with pytest.raises(TypeError, match=r"`functrans\.numpy\.nonzero`.*static `size`"):
        ft.jit(lambda x: x.nonzero())(Z)
    with pytest.raises(ValueError, match=r"0-d array"):
        fnp.nonzero(jnp.array(1.0))


def test_nonzero_without_size_in_lazy_mode(lazy_mode):
    f = lambda np_: lambda x: np_.sum(x[x.nonzero()] ** 2)
    assert_close(ft.grad(f(fnp))(Z), jax.grad(f(jnp))(Z))


def test_traced_repeats_need_total_repeat_length():
    counts = jnp.array([2, 0, 1, 3])
    f = lambda x, r: x.repeat(r, total_repeat_length=5)
    assert_close(ft.jit(f)(X[0], counts), jnp.repeat(X[0], counts, total_repeat_length=5))
    g = lambda np_: lambda x: np_.sum(np_.sin(np_.repeat(x, counts, total_repeat_length=7)))
    assert_close(ft.jit(ft.grad(g(fnp)))(X[0]), jax.grad(g(jnp))(X[0]))
    with pytest.raises(TypeError, match=r"total_repeat_length"):
        ft.jit(lambda x, r: x.repeat(r))(X[0], counts)


# ---------------------------------------------------------------------------------------------
# Errors


def test_numpy_functions_refuse_traced_values_through_the_new_methods():
    # NumPy hands a foreign array to its method with `out=None`: the result would be fine, but
    # functrans asks for `functrans.numpy` there as it does for `numpy.sum`.
    for np_fun in (np.cumsum, np.cumprod, np.round, np.argmax, np.all, np.ptp, np.trace):
        with pytest.raises(TypeError, match=r"functrans\.numpy"):
            ft.grad(lambda x, f=np_fun: fnp.sum(f(x) * 1.0))(X)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fnp.sort(X, kind="quicksort"), TypeError, r"`kind`.*stable"),
        (lambda: fnp.argsort(X, order="a"), TypeError, r"`order`"),
        (lambda: fnp.searchsorted(X, 1.0), ValueError, r"1-D `a`"),
        (lambda: fnp.searchsorted(X[0], 1.0, side="middle"), ValueError, r"'left' or 'right'"),
        (lambda: fnp.searchsorted(X[0], 1.0, method="bisect"), ValueError, r"method='bisect'"),
        (lambda: fnp.take_along_axis(X, np.array([[0.0]]), 1), TypeError, r"integer `indices`"),
        (lambda: fnp.take_along_axis(X, np.array([0]), 1), ValueError, r"same number"),
        (lambda: fnp.take_along_axis(X, np.array([[0]]), None), ValueError, r"1-D `indices`"),
        (lambda: fnp.take_along_axis(X, np.array([[0]]), 1, mode="wrap"), ValueError, r"'clip'"),
        (lambda: fnp.quantile(X, 0.5, method="cubic"), ValueError, r"method='cubic'"),
        (lambda: fnp.quantile(X, jnp.ones((2, 2))), ValueError, r"scalar or 1-D"),
        (lambda: fnp.quantile(X, 0.5, weights=X), NotImplementedError, r"weights"),
        (lambda: fnp.quantile(X, 0.5, overwrite_input=True), ValueError, r"overwrite_input"),
        (lambda: fnp.median(X.astype(complex)), ValueError, r"complex"),
        (lambda: fnp.repeat(X, np.array([1, -1]), axis=0), ValueError, r"non-negative"),
        (lambda: fnp.nansum(X, out=X), NotImplementedError, r"`out`"),
        (lambda: fnp.nonzero(Z, size=2, fill_value=(1, 2, 3)), ValueError, r"fill_value"),
        (lambda: fnp.swapaxes(X, 0, 2), ValueError, r"out of bounds"),
        (lambda: ft.jit(lambda x: x.astype(float, device="cpu"))(X), NotImplementedError,
         r"jax\.device_put"),
    ],
)  # fmt: skip
def test_errors_name_the_fix(call, error, match):
    with pytest.raises(error, match=match):
        call()
