"""The public transformations, built on the JVP trace and the reverse-mode tape.

`grad` and `value_and_grad` are `vjp` with a unit cotangent; `linearize` is `jvp` at fixed
primals. Everything takes and returns pytrees (`jax.tree_util`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .core import (
    Tracer,
    check_callable,
    get_aval,
    is_inexact,
    is_python_scalar,
    issubdtype,
    new_main,
)
from .jvp import jvp_flat
from .lazy import at_top_level
from .vjp import vjp_flat

tree_flatten = jax.tree_util.tree_flatten
tree_unflatten = jax.tree_util.tree_unflatten
tree_map = jax.tree_util.tree_map

_GRAD_OUTPUT_SHAPE = (
    "`{api}` needs a function with a scalar output, but it returned an array of shape "
    "{shape} ({dtype}). Reduce the output first (e.g. `.sum()` or `.mean()`), or use "
    "`ft.vjp` / `ft.jacrev` for non-scalar outputs."
)
_GRAD_OUTPUT_DTYPE = (
    "`{api}` needs a real floating-point output, but the function returned dtype {dtype}. "
    "Cast it with `.astype(float)` if a derivative is meant."
)
_GRAD_INPUT_DTYPE = (
    "`{api}` can only differentiate with respect to floating-point inputs, but argument "
    "{argnum} has dtype {dtype}. Pass a float array (e.g. `x.astype(float)`), or set "
    "`allow_int=True` to get zero (float0) gradients for integer inputs."
)


# ---------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------


def _leaf_error(api, path, leaf):
    where = jax.tree_util.keystr(path) if path else "the argument"
    return TypeError(
        f"`{api}` got a leaf of type {type(leaf).__name__} at {where}: {leaf!r:.60}. Every "
        "leaf of a transformed argument must be an array or a Python number; mark other "
        "arguments static (`static_argnums`) or close over them instead."
    )


def _to_array(api, path, x):
    """Make an input leaf a value functrans can trace: a JAX array or a functrans value."""
    if isinstance(x, (Tracer, jax.Array)):
        return x
    if is_python_scalar(x) or isinstance(x, (np.ndarray, np.generic)):
        return jnp.asarray(x)
    raise _leaf_error(api, path, x)


def _flatten_args(api, args):
    leaves, tree = tree_flatten(args)
    if all(isinstance(x, (Tracer, jax.Array)) for x in leaves):
        return leaves, tree  # the common case; paths only serve the error message
    leaves_with_path, tree = jax.tree_util.tree_flatten_with_path(args)
    leaves = [_to_array(api, p, x) for p, x in leaves_with_path]
    return leaves, tree


def _outputs_to_arrays(tree):
    def conv(x):
        if is_python_scalar(x) or isinstance(x, (np.ndarray, np.generic)):
            return jnp.asarray(x)
        return x

    if isinstance(tree, (Tracer, jax.Array)):
        return tree  # a single array output: nothing to convert
    return tree_map(conv, tree)


def _normalize_argnums(api, argnums, nargs):
    single = isinstance(argnums, int)
    if not single and not isinstance(argnums, (tuple, list)):
        raise TypeError(
            f"`{api}` needs `argnums` to be an int or a tuple of ints, got "
            f"{type(argnums).__name__} instead: {argnums!r}."
        )
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"`{api}` needs at least one entry in `argnums`, got {argnums!r}.")
    out = []
    for a in nums:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"`argnums` must be an int or a tuple of ints, got {argnums!r}.")
        if not -nargs <= a < nargs:
            raise ValueError(
                f"`{api}` was given argnums={argnums!r}, but the function was called with "
                f"only {nargs} positional argument(s). Use an index below {nargs}."
            )
        out.append(a % nargs)
    if len(set(out)) != len(out):
        raise ValueError(
            f"`{api}` was given argnums={argnums!r}, which names one argument twice. List "
            "each argument once."
        )
    return single, tuple(out)


def _zeros_cotangent(x):
    aval = get_aval(x)
    if is_inexact(aval.dtype):
        return jnp.zeros(aval.shape, aval.dtype)
    return np.zeros(aval.shape, dtype=jax.dtypes.float0)


def _finish(primal, ct):
    """A derivative as returned to the user: zeros for `None`, in the primal's dtype."""
    if ct is None:
        return _zeros_cotangent(primal)
    aval = get_aval(primal)
    c_aval = get_aval(ct)
    if is_python_scalar(ct) or c_aval.dtype != aval.dtype or c_aval.shape != aval.shape:
        from functrans import numpy as fnp

        ct = fnp.broadcast_to(fnp.asarray(ct, aval.dtype), aval.shape)
    return ct


# ---------------------------------------------------------------------------------------------
# vjp / grad / value_and_grad
# ---------------------------------------------------------------------------------------------


def vjp(fun, *primals, has_aux=False, allow_int=False):
    """Evaluate `fun` at `primals` and return its vector-Jacobian product function.

    Args:
      fun: function of `len(primals)` pytrees of arrays.
      *primals: the point of evaluation.
      has_aux: if True, `fun` returns `(output, aux)` and `aux` is returned untouched.
      allow_int: accept integer or boolean primals (their cotangents are float0 zeros);
        without it they raise a `TypeError`, as the contract asks.

    Returns:
      `(out, vjp_fn)` or `(out, vjp_fn, aux)`; `vjp_fn(ct)` returns a tuple with one
      cotangent pytree per primal.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> y, f_vjp = ft.vjp(fnp.sin, 0.0)
      >>> (ct,) = f_vjp(1.0)
      >>> float(ct)
      1.0
    """
    check_callable("vjp", fun)
    flat, in_tree = _flatten_args("vjp", primals)
    if not allow_int:
        for i, p in enumerate(primals):
            for leaf in tree_flatten(p)[0]:
                dtype = get_aval(_to_array("vjp", (), leaf)).dtype
                if not is_inexact(dtype):
                    raise TypeError(_GRAD_INPUT_DTYPE.format(api="vjp", argnum=i, dtype=dtype))
    holder = {}

    def flat_fun(ins):
        out = fun(*tree_unflatten(in_tree, ins))
        aux = None
        if has_aux:
            out, aux = _split_aux("vjp", out)
        leaves, holder["out_tree"] = tree_flatten(out)
        return leaves, aux

    out_primals, backward, aux = vjp_flat(flat_fun, flat, name="vjp", owner=fun)
    out_tree = holder["out_tree"]
    out_avals = [get_aval(o) for o in out_primals]

    def vjp_fn(ct):
        ct_leaves, ct_tree = tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(
                "The cotangent passed to the `vjp` function must have the structure of the "
                f"primal output: expected {out_tree}, got {ct_tree} instead."
            )
        cts = [_check_cotangent(c, av, i) for i, (c, av) in enumerate(zip(ct_leaves, out_avals))]
        in_cts = backward(cts)
        in_cts = [_finish(p, c) for p, c in zip(flat, in_cts)]
        return tuple(tree_unflatten(in_tree, in_cts))

    out = _outputs_to_arrays(tree_unflatten(out_tree, out_primals))
    if has_aux:
        return out, vjp_fn, aux
    return out, vjp_fn


def _check_cotangent(ct, aval, i):
    if is_python_scalar(ct):
        ct = jnp.asarray(ct, aval.dtype)
    c_aval = get_aval(ct)
    if c_aval.shape != aval.shape:
        raise ValueError(
            f"Cotangent {i} passed to the `vjp` function has shape {c_aval.shape}, but the "
            f"corresponding primal output has shape {aval.shape}. Expected shape {aval.shape}."
        )
    if not is_inexact(aval.dtype):
        return None  # integer outputs have no derivative (their cotangent is float0)
    if c_aval.dtype != aval.dtype and not c_aval.weak_type:
        raise TypeError(
            f"Cotangent {i} passed to the `vjp` function has dtype {c_aval.dtype}, but the "
            f"primal output has dtype {aval.dtype}. Expected a cotangent of dtype {aval.dtype}."
        )
    if c_aval.dtype != aval.dtype:
        from functrans import numpy as fnp

        ct = fnp.asarray(ct, aval.dtype)
    return ct


def _split_aux(api, out):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(
            f"`{api}` with `has_aux=True` needs the function to return a pair "
            f"`(output, aux)`, but it returned {type(out).__name__}."
        )
    return out[0], out[1]


def value_and_grad(fun, argnums=0, has_aux=False, allow_int=False):
    """Return a function computing both `fun` and its gradient with respect to `argnums`.

    Args:
      fun: function with a real scalar output (or `(output, aux)` with `has_aux`).
      argnums: int or tuple of ints (negative counts from the end).
      has_aux: whether `fun` returns `(output, aux)`.
      allow_int: give zero (float0) gradients for integer inputs instead of an error.

    Returns:
      A function returning `(value, grad)` or `((value, aux), grad)`.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> value, g = ft.value_and_grad(lambda x: x ** 3)(2.0)
      >>> float(value), float(g)
      (8.0, 12.0)
    """
    return _value_and_grad(fun, argnums, has_aux, allow_int, "value_and_grad")


def _value_and_grad(fun, argnums, has_aux, allow_int, api):
    check_callable(api, fun)

    @at_top_level
    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        single, nums = _normalize_argnums(api, argnums, len(args))
        dyn = tuple(args[i] for i in nums)
        flat, in_tree = _flatten_args(api, dyn)
        _check_grad_inputs(api, flat, in_tree, nums, allow_int)
        holder = {}

        def flat_fun(ins):
            new_args = list(args)
            for i, v in zip(nums, tree_unflatten(in_tree, ins)):
                new_args[i] = v
            out = fun(*new_args, **kwargs)
            aux = None
            if has_aux:
                out, aux = _split_aux(api, out)
            _check_scalar_output(api, out)
            holder["out"] = out
            return [out], aux

        (out,), backward, aux = vjp_flat(flat_fun, flat, name=api, owner=fun)
        # A literal seed lets `x * 1` fold away, so graphs of gradients carry no seed.
        g = backward([1.0])
        grads = [_finish(p, c) for p, c in zip(flat, g)]
        grads = tree_unflatten(in_tree, grads)
        grads = grads[0] if single else tuple(grads)
        out = _outputs_to_arrays(out)
        return ((out, aux), grads) if has_aux else (out, grads)

    return wrapped


def _check_scalar_output(api, out):
    if isinstance(out, (tuple, list, dict)):
        raise TypeError(
            f"`{api}` needs a function with a single scalar output, but it returned a "
            f"{type(out).__name__}. If it returns `(loss, aux)`, pass `has_aux=True`."
        )
    try:
        aval = get_aval(out)
    except TypeError:
        raise TypeError(
            f"`{api}` needs a function with a real scalar output, but it returned "
            f"{type(out).__name__} ({out!r:.40}). Return the loss as an array or a number."
        ) from None
    if aval.shape != ():
        raise TypeError(
            _GRAD_OUTPUT_SHAPE.format(api=api, shape=aval.shape, dtype=aval.str_short())
        )
    if not issubdtype(aval.dtype, jnp.floating):
        raise TypeError(_GRAD_OUTPUT_DTYPE.format(api=api, dtype=aval.dtype))


def _check_grad_inputs(api, flat, in_tree, nums, allow_int):
    for leaf in flat:
        dtype = get_aval(leaf).dtype
        if issubdtype(dtype, jnp.complexfloating):
            argnum = nums[0] if len(nums) == 1 else nums
            raise TypeError(
                f"`{api}` needs real inputs, but argument {argnum} has dtype {dtype}: the "
                "gradient of a function of complex inputs is not defined without a "
                "convention. Differentiate the real and imaginary parts as separate real "
                "arguments, or use `ft.vjp` / `ft.jvp`, which accept complex values."
            )
        if allow_int:
            continue
        if not is_inexact(dtype):
            argnum = nums[0] if len(nums) == 1 else nums
            raise TypeError(_GRAD_INPUT_DTYPE.format(api=api, argnum=argnum, dtype=dtype))


def grad(fun, argnums=0, has_aux=False, allow_int=False):
    """The gradient of a real scalar function with respect to argument(s) `argnums`.

    The result is an ordinary function that can be differentiated again, to any order.

    Args:
      fun: function with a real scalar output (or `(output, aux)` with `has_aux`).
      argnums: int or tuple of ints (negative counts from the end).
      has_aux: whether `fun` returns `(output, aux)`; the gradient function then returns
        `(grad, aux)`.
      allow_int: give zero (float0) gradients for integer inputs instead of an error.

    Returns:
      A function with the signature of `fun` returning the gradient, shaped like the
      selected argument(s).

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> d2 = ft.grad(ft.grad(fnp.tanh))
      >>> round(float(d2(0.5)), 6)
      -0.726862
    """
    vg = _value_and_grad(fun, argnums, has_aux, allow_int, "grad")

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        out, g = vg(*args, **kwargs)
        return (g, out[1]) if has_aux else g

    return wrapped


# ---------------------------------------------------------------------------------------------
# jvp / linearize
# ---------------------------------------------------------------------------------------------


@at_top_level
def jvp(fun, primals, tangents, has_aux=False):
    """Evaluate `fun` at `primals` and push `tangents` forward through it.

    Args:
      fun: function of `len(primals)` pytrees.
      primals: tuple or list of the arguments.
      tangents: tuple or list with the structure, shapes and dtypes of `primals`.
      has_aux: whether `fun` returns `(output, aux)`.

    Returns:
      `(out, tangent_out)`, or `(out, tangent_out, aux)` with `has_aux`.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> y, t = ft.jvp(fnp.sin, (0.0,), (2.0,))
      >>> float(y), float(t)
      (0.0, 2.0)
    """
    check_callable("jvp", fun)
    for name, v in (("primals", primals), ("tangents", tangents)):
        if not isinstance(v, (tuple, list)):
            raise TypeError(
                f"`jvp` takes `{name}` as a tuple or list with one entry per argument, got "
                f"{type(v).__name__} instead. Write `ft.jvp(f, (x,), (t,))`."
            )
    flat, in_tree = _flatten_args("jvp", tuple(primals))
    flat_t = _flat_tangents("jvp", flat, in_tree, tangents)
    holder = {}

    def flat_fun(ins):
        out = fun(*tree_unflatten(in_tree, ins))
        aux = None
        if has_aux:
            out, aux = _split_aux("jvp", out)
        leaves, holder["out_tree"] = tree_flatten(out)
        return leaves, aux

    outs, out_ts, aux = jvp_flat(flat_fun, flat, flat_t, name="jvp", owner=fun)
    out_ts = [_finish(o, t) for o, t in zip(outs, out_ts)]
    out_tree = holder["out_tree"]
    res = (
        _outputs_to_arrays(tree_unflatten(out_tree, outs)),
        _outputs_to_arrays(tree_unflatten(out_tree, out_ts)),
    )
    return (*res, aux) if has_aux else res


def _flat_tangents(api, flat, in_tree, tangents):
    """Check tangents against the flat primals (structure, shape, dtype); flat, None for ints."""
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if t_tree != in_tree:
        raise ValueError(
            f"`{api}` needs tangents with the same tree structure as the primals: expected "
            f"{in_tree}, got {t_tree} instead."
        )
    return [_check_tangent(p, t) for p, t in zip(flat, t_leaves)]


def _check_tangent(p, t):
    p_aval = get_aval(p)
    if is_python_scalar(t):
        t = jnp.asarray(t, p_aval.dtype if is_inexact(p_aval.dtype) else None)
    elif isinstance(t, (np.ndarray, np.generic)) and t.dtype != jax.dtypes.float0:
        t = jnp.asarray(t)
    t_aval = (
        get_aval(t) if not (isinstance(t, np.ndarray) and t.dtype == jax.dtypes.float0) else None
    )
    t_shape = np.shape(t)
    if tuple(t_shape) != p_aval.shape:
        raise ValueError(
            f"`jvp` got a tangent of shape {tuple(t_shape)} for a primal of shape "
            f"{p_aval.shape}; each tangent must have the shape of its primal."
        )
    if not is_inexact(p_aval.dtype):
        if t_aval is not None and not (t_aval.dtype == jax.dtypes.float0):
            raise TypeError(
                f"`jvp` got a tangent of dtype {t_aval.dtype} for an integer primal of dtype "
                f"{p_aval.dtype}; integer primals take float0 tangents "
                "(`numpy.zeros(shape, dtype=jax.dtypes.float0)`)."
            )
        return None
    if t_aval.dtype != p_aval.dtype and not t_aval.weak_type:
        raise TypeError(
            f"`jvp` got a tangent of dtype {t_aval.dtype} for a primal of dtype "
            f"{p_aval.dtype}; primal and tangent dtypes must be equal."
        )
    if t_aval.dtype != p_aval.dtype:
        from functrans import numpy as fnp

        t = fnp.asarray(t, p_aval.dtype)
    return t


def linearize(fun, *primals):
    """Return `fun(*primals)` and its JVP at `primals` as a function of the tangents.

    `fun` runs once: its primal work is done now, and the tangent computation is recorded
    as a linear `Graph` that `f_jvp` evaluates (and that can itself be transformed).

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> y, f_jvp = ft.linearize(fnp.sin, 0.0)
      >>> float(f_jvp(3.0))
      3.0
    """
    check_callable("linearize", fun)
    from .graph import Graph, GraphTrace

    flat, in_tree = _flatten_args("linearize", primals)
    holder = {}

    def flat_fun(ins):
        leaves, holder["out_tree"] = tree_flatten(fun(*tree_unflatten(in_tree, ins)))
        return leaves, None

    # The tangents are inputs of a graph one level below the JVP, so tangent work is
    # recorded there while primal work runs on the concrete values.
    with new_main(GraphTrace, "linearize") as main:
        gtrace = main.trace
        t_in = [gtrace.new_input(get_aval(p)) if is_inexact(get_aval(p).dtype) else None
                for p in flat]  # fmt: skip
        outs, out_ts, _ = jvp_flat(flat_fun, flat, t_in, name="linearize")
        out_atoms = [gtrace.atom(_finish(o, t)) for o, t in zip(outs, out_ts)]
    b = gtrace.builder
    t_vars = [t.node for t in t_in if t is not None]
    graph = Graph(t_vars, b.const_vars, b.const_vals, b.eqns, out_atoms, None, None)
    out_tree = holder["out_tree"]

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise TypeError(
                f"The function returned by `linearize` takes {len(primals)} tangent(s), one per "
                f"primal, but got {len(tangents)}."
            )
        checked = _flat_tangents("linearize", flat, in_tree, tangents)
        ts = [t for t, p in zip(checked, flat) if is_inexact(get_aval(p).dtype)]
        outs_t = graph.eval_flat(*ts)
        return _outputs_to_arrays(tree_unflatten(out_tree, outs_t))

    return _outputs_to_arrays(tree_unflatten(out_tree, outs)), f_jvp


def stop_gradient(x):
    """The identity with zero derivative at every order, mapped over a pytree."""
    from .prims.elementwise import stop_gradient as sg

    def one(v):
        return sg(v) if is_inexact(get_aval(v).dtype) else v

    return tree_map(one, x)
