"""Robustness: deep programs, threads, many calls, and failures inside transformations.

- a chain of 10,000 primitives differentiates in both modes, far past Python's recursion
  limit;
- transformations running at once in several threads keep their traces apart (the trace
  stack is thread-local);
- 10,000 eager gradient calls do not grow memory;
- an exception inside the user's function leaves no transformation or staging state behind.
"""

import gc
import os
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close
from functrans._src import core

N_CHAIN = 10_000


def chain(x):
    for i in range(N_CHAIN):
        x = fnp.sin(x) if i % 2 else x * 1.0001
    return x


def chain_and_derivative(x):
    """The chain and its derivative in plain NumPy: a product of the local slopes."""
    d = 1.0
    for i in range(N_CHAIN):
        if i % 2:
            d, x = d * np.cos(x), np.sin(x)
        else:
            d, x = d * 1.0001, x * 1.0001
    return x, d


@pytest.fixture(scope="module")
def low_recursion_limit():
    """Keep the recursion limit at its default, so depth 10,000 would certainly exceed it."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(previous)


@pytest.mark.parametrize("mode", ["grad", "jvp", "make_graph"])
def test_chain_of_ten_thousand_primitives(mode, low_recursion_limit):
    x = 0.7
    value, slope = chain_and_derivative(x)
    if mode == "grad":
        assert_close(ft.grad(chain)(x), jnp.asarray(slope), rtol=1e-10)
    elif mode == "jvp":
        out, t = ft.jvp(chain, (x,), (1.0,))
        assert_close((out, t), (jnp.asarray(value), jnp.asarray(slope)), rtol=1e-10)
    else:
        graph = ft.make_graph(chain)(x)
        assert graph.num_equations == N_CHAIN
        assert_close(graph(x), jnp.asarray(value), rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# Threads

X = jnp.asarray([0.3, -1.2, 2.0])

WORK = {
    # name: (functrans transformation, the same with JAX)
    "grad": (lambda x: ft.grad(lambda y: fnp.sum(fnp.sin(y) * y))(x),
             lambda x: jax.grad(lambda y: jnp.sum(jnp.sin(y) * y))(x)),
    "grad_grad": (lambda x: ft.grad(ft.grad(lambda y: fnp.tanh(y) ** 3))(x[0]),
                  lambda x: jax.grad(jax.grad(lambda y: jnp.tanh(y) ** 3))(x[0])),
    "jvp": (lambda x: ft.jvp(fnp.exp, (x,), (x,)), lambda x: jax.jvp(jnp.exp, (x,), (x,))),
    "vmap_grad": (lambda x: ft.vmap(ft.grad(lambda y: y * fnp.cos(y)))(x),
                  lambda x: jax.vmap(jax.grad(lambda y: y * jnp.cos(y)))(x)),
    "hvp": (lambda x: ft.hvp(lambda y: fnp.sum(y**3), (x,), (x,)), lambda x: 6 * x * x),
    "graph": (lambda x: ft.make_graph(ft.grad(lambda y: fnp.sum(y * y)))(x)(x),
              lambda x: 2 * x),
}  # fmt: skip


def test_threads_keep_their_traces_apart():
    expected = {name: theirs(X) for name, (_, theirs) in WORK.items()}
    barrier = threading.Barrier(len(WORK))
    results, errors = {}, []

    def run(name):
        try:
            barrier.wait()
            outs = [WORK[name][0](X * (1.0 + 0.0 * k)) for k in range(5)]
            results[name] = outs
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((name, e))

    threads = [threading.Thread(target=run, args=(name,)) for name in WORK]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name, outs in results.items():
        for out in outs:
            assert_close(out, expected[name], check_dtype=False)
    assert not core._state.stack


def test_a_tracer_from_another_thread_is_refused():
    box = []

    def leak():
        ft.grad(lambda x: box.append(fnp.sin(x)) or fnp.sum(x))(X)

    t = threading.Thread(target=leak)
    t.start()
    t.join()
    with pytest.raises(RuntimeError, match="was used after"):
        fnp.cos(box[0])


# ---------------------------------------------------------------------------------------------
# Memory


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_ten_thousand_eager_gradients_do_not_grow_memory():
    f = ft.grad(lambda x: x * x + 1.0)
    for _ in range(500):  # warm every cache first
        f(0.5)
    gc.collect()
    objects, rss = len(gc.get_objects()), _resident_bytes()
    for _ in range(10_000):
        f(0.5)
    gc.collect()
    grown_objects, grown_rss = len(gc.get_objects()) - objects, _resident_bytes() - rss
    # Keeping even one tracer, tape or dict per call would add 10,000 objects.
    assert grown_objects < 500, f"{grown_objects} more live objects after 10,000 calls"
    assert grown_rss < 16 * 2**20, f"resident memory grew by {grown_rss / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------------------------
# Failures inside the user's function


class Boom(Exception):
    pass


def explode(x):
    y = fnp.sin(x) * x
    if True:  # an error deep inside the traced function, after some work
        raise Boom("from the user's function")
    return y


FAILING = {
    "grad": lambda: ft.grad(lambda x: fnp.sum(explode(x)))(X),
    "vjp": lambda: ft.vjp(explode, X),
    "jvp": lambda: ft.jvp(explode, (X,), (X,)),
    "vmap": lambda: ft.vmap(explode)(X),
    "jit": lambda: ft.jit(explode)(X),
    "make_graph": lambda: ft.make_graph(explode)(X),
    "checkpoint": lambda: ft.grad(lambda x: fnp.sum(ft.checkpoint(explode)(x)))(X),
    "nested": lambda: ft.grad(lambda x: fnp.sum(ft.vmap(ft.grad(lambda y: fnp.sum(explode(y))))(
        fnp.stack([x, x]))))(X),
    "under_jax_jit": lambda: jax.jit(ft.grad(lambda x: fnp.sum(explode(x))))(X),
    "in_backward_pass": lambda: ft.grad(lambda x: fnp.sum(ft.grad(
        lambda y: fnp.sum(explode(y) if isinstance(y, float) else y * x))(x) * explode(x)))(X),
    "cond_branch": lambda: ft.grad(lambda x: ft.lax.cond(True, lambda y: fnp.sum(explode(y)),
                                                           fnp.sum, x))(X),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FAILING))
def test_a_failed_transformation_leaves_no_state(case):
    with pytest.raises(Boom):
        FAILING[case]()
    assert core._state.stack == [] and core._state.staging is None
    # The same transformations work right afterwards, and give JAX's answer.
    f = lambda x: fnp.sum(fnp.sin(x) * x)
    assert_close(ft.grad(f)(X), jnp.sin(X) + X * jnp.cos(X))
    assert_close(ft.jit(ft.grad(f))(X), jnp.sin(X) + X * jnp.cos(X))
    assert_close(ft.vmap(ft.grad(lambda x: fnp.sin(x) * x))(X), jnp.sin(X) + X * jnp.cos(X))


def test_jit_retraces_after_a_failed_trace():
    calls = []

    def sometimes(x):
        calls.append(1)
        if len(calls) == 1:
            raise Boom("first trace fails")
        return x * 2.0

    f = ft.jit(sometimes)
    with pytest.raises(Boom):
        f(X)
    assert_close(f(X), 2.0 * X)
