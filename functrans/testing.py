"""Testing helpers: `check_grads`, finite-difference checks of every mode and order.

Finite differences are an oracle independent of every rule in functrans: a JVP is compared
with a central difference along a random direction, and a VJP is compared through the
identity `<ct, J t> == <J^T ct, t>` (after HIPS autograd and `jax.test_util.check_grads`).
Higher orders apply the same checks to the JVP and VJP functions themselves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._src.api import jvp, vjp

__all__ = ["check_grads"]

EPS = 1e-4  # JAX's default step
_TOLERANCE = {
    np.dtype(np.float16): 1e-1,
    np.dtype(jnp.bfloat16): 1e-1,
    np.dtype(np.float32): 2e-3,
    np.dtype(np.float64): 1e-5,
    np.dtype(np.complex64): 2e-3,
    np.dtype(np.complex128): 1e-5,
}
_MODES = ("fwd", "rev")


def _leaves(tree):
    return [jnp.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _default_tolerance(args):
    dtypes = {np.dtype(x.dtype) for x in _leaves(args)}
    return max((_TOLERANCE.get(d, 1e-5) for d in dtypes), default=1e-5)


def _rand_like(rng, tree):
    def one(x):
        x = jnp.asarray(x)
        return jnp.asarray(rng.standard_normal(x.shape), x.dtype)

    return jax.tree_util.tree_map(one, tree)


def _axpy(a, x, y):
    return jax.tree_util.tree_map(lambda u, v: jnp.asarray(a * u + v, jnp.asarray(v).dtype), x, y)


def _numerical_jvp(f, args, tangents, eps):
    """Central difference `(f(x + eps t) - f(x - eps t)) / (2 eps)` in the inputs' precision."""
    f_pos = f(*_axpy(eps, tangents, args))
    f_neg = f(*_axpy(-eps, tangents, args))

    def diff(p, n):
        p, n = jnp.asarray(p), jnp.asarray(n)
        return jnp.asarray((p - n) * (0.5 / eps), p.dtype)

    return jax.tree_util.tree_map(diff, f_pos, f_neg)


def _inner(xs, ys):
    return sum(jnp.vdot(jnp.asarray(x), jnp.asarray(y)) for x, y in zip(_leaves(xs), _leaves(ys)))


def _check_close(what, got, expected, atol, rtol, where):
    """Raise an `AssertionError` naming the worst mismatch of two pytrees."""
    g_leaves, g_tree = jax.tree_util.tree_flatten(got)
    e_leaves, e_tree = jax.tree_util.tree_flatten(expected)
    if g_tree != e_tree:
        raise AssertionError(
            f"`check_grads`: the {what} {where} has structure {g_tree}, but finite differences "
            f"give {e_tree}."
        )
    worst = None
    for i, (g, e) in enumerate(zip(g_leaves, e_leaves)):
        g, e = np.asarray(g, np.float64), np.asarray(e, np.float64)
        if g.shape != e.shape:
            raise AssertionError(
                f"`check_grads`: the {what} {where} has shape {g.shape} at leaf {i}, but finite "
                f"differences give shape {e.shape}."
            )
        err = np.abs(g - e)
        excess = err - (atol + rtol * np.abs(e))
        if excess.size and (worst is None or np.nanmax(excess) > worst[0]):
            k = np.unravel_index(np.nanargmax(excess), excess.shape) if excess.ndim else ()
            worst = (np.nanmax(excess), i, k, float(err[k]), float(g[k]), float(e[k]))
        if not np.all(np.isfinite(g) == np.isfinite(e)):
            raise AssertionError(
                f"`check_grads`: the {what} {where} is not finite where finite differences are "
                f"(or the other way round) at leaf {i}: got {g}, expected {e}."
            )
    if worst is not None and worst[0] > 0:
        _, i, k, err, g, e = worst
        raise AssertionError(
            f"`check_grads`: the {what} {where} does not match finite differences. Worst "
            f"absolute error {err:.3g} at leaf {i}, index {tuple(int(j) for j in k)}: got "
            f"{g:.6g}, finite differences give {e:.6g} (atol={atol:g}, rtol={rtol:g}). Check "
            "the differentiation rules involved, or loosen `atol`/`rtol`/`eps` if the "
            "function is badly conditioned at this point."
        )


def _check_jvp(f, args, atol, rtol, eps, rng, where):
    tangents = _rand_like(rng, args)
    out, t_out = jvp(f, args, tangents)
    _check_close("output", out, f(*args), atol, rtol, where)
    _check_close("JVP", t_out, _numerical_jvp(f, args, tangents, eps), atol, rtol, where)


def _check_vjp(f, args, atol, rtol, eps, rng, where):
    out, f_vjp = vjp(f, *args)
    _check_close("output", out, f(*args), atol, rtol, where)
    tangents = _rand_like(rng, args)
    t_out = _numerical_jvp(f, args, tangents, eps)
    ct = _rand_like(rng, out)
    ct_in = f_vjp(ct)
    # <J^T ct, t> must equal <ct, J t>.
    _check_close("VJP", _inner(ct_in, tangents), _inner(ct, t_out), atol, rtol, where)


def check_grads(fun, args, order=2, modes=("fwd", "rev"), atol=None, rtol=None, eps=None):
    """Check the derivatives of `fun` at `args` against finite differences.

    Every mode in `modes` is checked at every order up to `order`: at order 2 with both
    modes that is the JVP and the VJP, then the JVP of the JVP, the VJP of the JVP, the JVP
    of the VJP and the VJP of the VJP. JVPs are compared with central differences along a
    random direction; VJPs through `<J^T ct, t> == <ct, J t>`. Differences are computed in
    the precision of the inputs.

    Args:
      fun: function of float arrays (pytrees allowed) returning a pytree of float arrays.
      args: tuple or list of the arguments at which to check.
      order: the highest derivative order to check (1 or more).
      modes: a subset of `("fwd", "rev")`.
      atol: absolute tolerance; by default 1e-5 for float64 inputs, 2e-3 for float32.
      rtol: relative tolerance, with the same default.
      eps: finite-difference step; by default `1e-4`, as in JAX.

    Returns:
      None. Raises `AssertionError` naming the worst error, the mode and the order.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.check_grads(fnp.sin, (jnp.array([0.5, 1.0]),), order=2)
    """
    if not isinstance(args, (tuple, list)):
        raise TypeError(
            f"`check_grads` takes `args` as a tuple or list of arguments, got "
            f"{type(args).__name__} instead. Write `check_grads(f, (x,))`."
        )
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in modes if m not in _MODES]
    if bad or not modes:
        raise ValueError(
            f"`check_grads` got modes={modes!r}; each mode must be 'fwd' or 'rev', e.g. "
            "`modes=('fwd', 'rev')`."
        )
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"`check_grads` needs `order` to be an int of at least 1, got {order!r}.")
    args = tuple(args)
    for x in _leaves(args):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            raise TypeError(
                f"`check_grads` can only check floating-point arguments, got a leaf of dtype "
                f"{x.dtype}. Close over integer arguments instead of passing them."
            )
    default = _default_tolerance(args)
    atol = default if atol is None else atol
    rtol = default if rtol is None else rtol
    eps = EPS if eps is None else eps
    rng = np.random.RandomState(0)

    def check(f, depth, path):
        # `f` is `fun` differentiated `depth - 1` times along `path`; check its derivatives.
        for mode in modes:
            name = f"{mode} of {path}" if path else mode
            where = f"(mode {name!r}, order {depth})"
            if mode == "fwd":
                _check_jvp(f, args, atol, rtol, eps, rng, where)
                if depth < order:
                    tangents = _rand_like(rng, args)

                    def f_jvp(*xs, f=f, tangents=tangents):
                        return jvp(f, xs, tangents)[1]

                    check(f_jvp, depth + 1, name)
            else:
                _check_vjp(f, args, atol, rtol, eps, rng, where)
                if depth < order:
                    ct = _rand_like(rng, f(*args))

                    def f_vjp(*xs, f=f, ct=ct):
                        return vjp(f, *xs)[1](ct)

                    check(f_vjp, depth + 1, name)

    check(fun, 1, "")
