"""Batching: the `vmap` trace.

A `BatchTracer` holds a value one level down together with its *batch axis*: the axis of
that value along which the examples of the batch lie. The user's function sees only the
per-example value (its `aval` leaves the batch axis out), so it is written for one example.

Each primitive's `batch` rule (defined beside its other rules, in `prims/`) receives the
lower-level operands and their batch axes (`None` for an operand shared by every example)
and returns the batched result and its batch axis:

    rule(args, dims, **params) -> (out, out_dim)        # or (outs, out_dims)

The rules are written with functrans operations, so a batched computation can itself be
differentiated, batched again, or staged into a graph.
"""

from __future__ import annotations

import functools

import jax

from . import staged
from .core import ShapedArray, Trace, Tracer, check_callable, get_aval, is_python_scalar, new_main
from .lazy import at_top_level

tree_flatten = jax.tree_util.tree_flatten
tree_unflatten = jax.tree_util.tree_unflatten


class BatchTracer(Tracer):
    __slots__ = ("val", "bdim")

    def __init__(self, trace, val, bdim):
        self._trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def aval(self):
        aval = get_aval(self.val)
        shape = aval.shape[: self.bdim] + aval.shape[self.bdim + 1 :]
        return ShapedArray(shape, aval.dtype, aval.weak_type)

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}> from `{self._trace.main.name}` (batched)"


def _missing_batch_rule(prim):
    return NotImplementedError(
        f"The primitive `{prim.name}` has no batching rule, so `vmap` cannot pass through it. "
        f"Define `{prim.name}_p.batch` (see `functrans.extend`) or call the function in a "
        "Python loop instead of under `vmap`."
    )


class BatchTrace(Trace):
    def wrap(self, val, bdim):
        return val if bdim is None else BatchTracer(self, val, bdim)

    def process_primitive(self, prim, args, params):
        vals, dims = [], []
        for a in args:
            if isinstance(a, BatchTracer) and a._trace is self:
                vals.append(a.val)
                dims.append(a.bdim)
            else:
                vals.append(a)
                dims.append(None)
        if all(d is None for d in dims):
            return prim.bind(*vals, **params)
        if prim.batch is None:
            raise _missing_batch_rule(prim)
        out, out_dim = prim.batch(vals, dims, **params)
        if prim.multiple_results:
            return [self.wrap(o, d) for o, d in zip(out, out_dim)]
        return self.wrap(out, out_dim)

    def concrete_error(self, tracer, what):
        return TypeError(
            f"`{what}()` was called on a functrans value of type {tracer.aval.str_short()} "
            f"inside `{self.main.name}`, where it stands for a whole batch of values, one per "
            "example, so it has no single concrete value. Use `functrans.numpy.where` or "
            "`ft.lax.cond` for value-dependent choices, or move the conversion out of the "
            "function passed to `vmap`."
        )


# ---------------------------------------------------------------------------------------------
# in_axes / out_axes
# ---------------------------------------------------------------------------------------------


def _broadcast_prefix(api, what, prefix, tree, tree_name):
    """One entry of `prefix` per leaf of `tree`, where `prefix` is a tree prefix of `tree`."""
    try:
        nested = jax.tree_util.tree_map(
            lambda ax, sub: [ax] * len(tree_flatten(sub)[0]),
            prefix,
            tree,
            is_leaf=lambda x: x is None,
        )
    except ValueError:
        raise ValueError(
            f"`{api}` got {what}={prefix!r}, which is not a tree prefix of the {tree_name} "
            f"(structure {jax.tree_util.tree_structure(tree)}). Give one axis (an int or "
            f"`None`) per {tree_name.split()[-1]}, or a pytree that matches its structure."
        ) from None
    flat = []
    for entry in tree_flatten(nested, is_leaf=lambda x: isinstance(x, list))[0]:
        flat.extend(entry)
    for ax in flat:
        if ax is not None and (not isinstance(ax, int) or isinstance(ax, bool)):
            raise TypeError(
                f"`{api}` needs every entry of `{what}` to be an int or `None`, got {ax!r}."
            )
    return flat


def _normalize_axis(api, what, ax, ndim, where):
    if not -ndim <= ax < ndim:
        raise ValueError(
            f"`{api}` was asked to map {where} along axis {ax} (`{what}`), but it has rank "
            f"{ndim}, so the axis must lie in [{-ndim}, {ndim}). Use a valid axis, or `None` "
            "for a value shared by every example."
        )
    return ax % ndim


def _to_batch_array(x):
    from .api import _to_array

    return _to_array("vmap", (), x)


def _move_out(x, bdim, out_ax, size):
    """Put the batch axis of `x` (`None`: not batched) at position `out_ax`."""
    from .prims.elementwise import broadcast_to
    from .prims.structural import moveaxis, reshape

    x = _to_batch_array(x)
    shape = tuple(get_aval(x).shape)
    if bdim is None:
        x = broadcast_to(reshape(x, (1, *shape)), (size, *shape))
        bdim = 0
    nd = len(get_aval(x).shape)
    out_ax = _normalize_axis("vmap", "out_axes", out_ax, nd, "an output")
    return moveaxis(x, bdim, out_ax)


# ---------------------------------------------------------------------------------------------
# vmap
# ---------------------------------------------------------------------------------------------


def vmap(fun, in_axes=0, out_axes=0):
    """Vectorise `fun` over a batch axis of its arguments.

    `fun` is written for one example; `vmap(fun)` maps it over axis `in_axes` of its
    arguments and stacks the results along `out_axes`. It composes with every other
    transformation: `vmap(grad(loss))` gives per-example gradients, and `grad`, `jvp` or
    another `vmap` may wrap it.

    Args:
      fun: function of pytrees of arrays.
      in_axes: an int, `None`, or a tuple with one entry per positional argument, each a
        pytree prefix of that argument whose leaves are ints (the mapped axis, negative
        counts from the end) or `None` (the argument is shared by every example). Keyword
        arguments are always mapped over axis 0.
      out_axes: the same for the output: where the batch axis goes in each output leaf
        (`None` requires that leaf not to depend on the batch).

    Returns:
      The batched function, with the signature of `fun`.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.vmap(lambda x, y: fnp.dot(x, y), in_axes=(0, None))(jnp.eye(2), jnp.array([3., 4.]))
      Array([3., 4.], dtype=float32)
    """
    check_callable("vmap", fun)
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)  # as JAX: a list of axes means one per argument
    if not (in_axes is None or isinstance(in_axes, (int, tuple))):
        raise TypeError(
            f"`vmap` needs `in_axes` to be an int, `None`, or a tuple with one entry per "
            f"positional argument, got {type(in_axes).__name__} instead."
        )

    @at_top_level
    @functools.wraps(fun)
    def batched(*args, **kwargs):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(
                f"`vmap` got in_axes={in_axes!r} with {len(in_axes)} entries, but the function "
                f"was called with {len(args)} positional argument(s). Give `in_axes` one "
                "entry per positional argument (or a single int for all of them)."
            )
        leaves, in_tree = tree_flatten((args, kwargs))
        arg_axes = _broadcast_prefix("vmap", "in_axes", in_axes, args, "positional arguments")
        axes = arg_axes + [0] * (len(leaves) - len(arg_axes))
        leaves = [_to_batch_array(x) for x in leaves]
        size, dims = None, []
        for i, (x, ax) in enumerate(zip(leaves, axes)):
            if ax is None:
                dims.append(None)
                continue
            shape = get_aval(x).shape
            where = f"argument leaf {i} (shape {shape})"
            if not shape:
                raise ValueError(
                    f"`vmap` was asked to map {where} along axis {ax} (`in_axes`), but it is "
                    "a scalar (rank 0). Use `None` in `in_axes` for values shared by every "
                    "example."
                )
            d = _normalize_axis("vmap", "in_axes", ax, len(shape), where)
            dims.append(d)
            if size is None:
                size = shape[d]
            elif shape[d] != size:
                sizes = [
                    f"leaf {j}: axis {dd} of shape {get_aval(v).shape}"
                    for j, (v, dd) in enumerate(zip(leaves, dims))
                    if dd is not None
                ]
                raise ValueError(
                    "`vmap` got inconsistent sizes for the mapped axis: "
                    f"{'; '.join(sizes)}. Every mapped argument must have the same size "
                    "along its mapped axis (check `in_axes`)."
                )
        if size is None:
            raise ValueError(
                "`vmap` needs at least one argument mapped over an axis, but `in_axes` is "
                f"{in_axes!r} (all `None`) and there are no keyword arguments to map. Map at "
                "least one argument, or call the function directly."
            )
        with new_main(BatchTrace, "vmap", size) as main:
            trace = main.trace
            ins = [trace.wrap(x, d) for x, d in zip(leaves, dims)]

            def flat_fun(xs):
                a, kw = tree_unflatten(in_tree, xs)
                return [fun(*a, **kw)], None

            (out,), _ = staged.call(flat_fun, ins, "vmap", fun)
            out_leaves, out_tree = tree_flatten(out)
            oaxes = _broadcast_prefix("vmap", "out_axes", out_axes, out, "output leaves")
            results = []
            for i, (o, ax) in enumerate(zip(out_leaves, oaxes)):
                if isinstance(o, BatchTracer) and o._trace is trace:
                    val, bdim = o.val, o.bdim
                else:
                    val, bdim = o, None
                if ax is None:
                    if bdim is not None:
                        raise ValueError(
                            f"`vmap` has out_axes=None for output leaf {i}, but that output "
                            "depends on the mapped inputs (it differs between examples). "
                            "Use an int in `out_axes` for it."
                        )
                    results.append(_to_batch_array(val) if is_python_scalar(val) else val)
                else:
                    results.append(_move_out(val, bdim, ax, size))
        return tree_unflatten(out_tree, results)

    return batched
