"""Jacobians and Hessians, built by composing `vmap` with `jvp` and `vjp`.

`jacfwd` pushes a whole standard basis of input tangents through one batched `jvp`;
`jacrev` pulls a standard basis of output cotangents through one batched `vjp`. Nothing here
is new machinery: each is a few lines over the transformations in `api.py` and
`batching.py`, so every result can be differentiated, batched or staged again.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from .api import _flatten_args, _normalize_argnums, grad, jvp, vjp
from .batching import vmap
from .core import check_callable, get_aval, is_inexact
from .lazy import at_top_level

tree_flatten = jax.tree_util.tree_flatten
tree_unflatten = jax.tree_util.tree_unflatten
tree_map = jax.tree_util.tree_map
tree_structure = jax.tree_util.tree_structure

_REAL_INPUTS = (
    "`{api}` needs floating-point inputs, but argument {argnum} has a leaf of dtype {dtype}. "
    "Pass float arrays (e.g. `x.astype(float)`), or leave the argument out of `argnums`."
)
_REAL_OUTPUTS = (
    "`{api}` needs floating-point outputs, but the function returned a leaf of dtype "
    "{dtype}. Cast the output with `.astype(float)` if a derivative is meant."
)


def _std_basis(leaves):
    """One standard basis of the space of `leaves`: per leaf, `(N, *leaf.shape)` rows."""
    sizes = [get_aval(x).size for x in leaves]
    total = int(sum(sizes))
    eye = np.eye(total)
    out, start = [], 0
    for x, n in zip(leaves, sizes):
        aval = get_aval(x)
        block = eye[:, start : start + n].reshape((total, *aval.shape)).astype(aval.dtype)
        out.append(jax.numpy.asarray(block))
        start += n
    return out


def _split_axis(arr, axis, leaves, lead_shape, trail):
    """Split axis `axis` of `arr` (of size `sum(leaf sizes)`) into one block per leaf.

    Each block is reshaped to `lead_shape + leaf.shape` (`trail=True`) or
    `leaf.shape + lead_shape` (`trail=False`).
    """
    from .prims.indexing import slice_in_dim
    from .prims.structural import reshape

    blocks, start = [], 0
    for leaf in leaves:
        aval = get_aval(leaf)
        part = slice_in_dim(arr, start, start + aval.size, axis)
        shape = (*lead_shape, *aval.shape) if trail else (*aval.shape, *lead_shape)
        blocks.append(reshape(part, shape))
        start += aval.size
    return blocks


def _selected(api, fun, argnums, args, kwargs):
    """The arguments selected by `argnums`, and `fun` as a function of them alone."""
    single, nums = _normalize_argnums(api, argnums, len(args))
    dyn = tuple(args[i] for i in nums)

    def partial_fun(*dyn_args):
        new_args = list(args)
        for i, v in zip(nums, dyn_args):
            new_args[i] = v
        return fun(*new_args, **kwargs)

    flat, _ = _flatten_args(api, dyn)
    for leaf in flat:
        dtype = get_aval(leaf).dtype
        if not is_inexact(dtype):
            argnum = nums[0] if single else nums
            raise TypeError(_REAL_INPUTS.format(api=api, argnum=argnum, dtype=dtype))
    return single, dyn, partial_fun


def _check_outputs(api, out):
    for leaf in tree_flatten(out)[0]:
        dtype = get_aval(leaf).dtype
        if not is_inexact(dtype):
            raise TypeError(_REAL_OUTPUTS.format(api=api, dtype=dtype))


def jacfwd(fun, argnums=0, has_aux=False):
    """The Jacobian of `fun` with respect to `argnums`, by forward mode.

    One `jvp` per input dimension, all in a single `vmap`: cheap when the inputs are smaller
    than the outputs.

    Args:
      fun: function of pytrees of float arrays returning a pytree of float arrays (or
        `(output, aux)` with `has_aux`).
      argnums: int or tuple of ints: the arguments to differentiate.
      has_aux: whether `fun` returns `(output, aux)`; the Jacobian function then returns
        `(jacobian, aux)`.

    Returns:
      A function with the signature of `fun` returning the Jacobian: the output's pytree
      with, at each leaf, the input's pytree (a tuple of them for a tuple `argnums`) of
      arrays of shape `out_leaf.shape + in_leaf.shape`.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.jacfwd(lambda x: x ** 2)(jnp.array([1.0, 2.0]))
      Array([[2., 0.],
             [0., 4.]], dtype=float32)
    """
    check_callable("jacfwd", fun)

    @at_top_level
    @functools.wraps(fun)
    def jac_fun(*args, **kwargs):
        single, dyn, f = _selected("jacfwd", fun, argnums, args, kwargs)
        flat, in_tree = tree_flatten(dyn)

        def pushfwd(*basis):
            tangents = tree_unflatten(in_tree, basis)
            if has_aux:
                out, t_out, aux = jvp(f, dyn, tangents, has_aux=True)
            else:
                (out, t_out), aux = jvp(f, dyn, tangents), None
            _check_outputs("jacfwd", out)
            return out, t_out, aux

        out, jac, aux = vmap(pushfwd, out_axes=(None, -1, None))(*_std_basis(flat))
        example = dyn[0] if single else dyn
        ex_leaves, ex_tree = tree_flatten(example)

        def unravel(out_leaf, arr):
            lead = tuple(get_aval(out_leaf).shape)
            blocks = _split_axis(arr, len(lead), ex_leaves, lead, trail=True)
            return tree_unflatten(ex_tree, blocks)

        jac = tree_map(unravel, out, jac)
        return (jac, aux) if has_aux else jac

    return jac_fun


def jacrev(fun, argnums=0, has_aux=False):
    """The Jacobian of `fun` with respect to `argnums`, by reverse mode.

    One `vjp` per output dimension, all in a single `vmap` over the cotangents: cheap when
    the outputs are smaller than the inputs.

    Args:
      fun: function of pytrees of float arrays returning a pytree of float arrays (or
        `(output, aux)` with `has_aux`).
      argnums: int or tuple of ints: the arguments to differentiate.
      has_aux: whether `fun` returns `(output, aux)`; the Jacobian function then returns
        `(jacobian, aux)`.

    Returns:
      A function with the signature of `fun` returning the Jacobian, structured and shaped
      exactly as `jacfwd`'s (`out_leaf.shape + in_leaf.shape` per pair of leaves).

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.jacrev(lambda x: fnp.sum(x ** 2))(jnp.array([1.0, 2.0]))
      Array([2., 4.], dtype=float32)
    """
    check_callable("jacrev", fun)

    @at_top_level
    @functools.wraps(fun)
    def jac_fun(*args, **kwargs):
        single, dyn, f = _selected("jacrev", fun, argnums, args, kwargs)
        if has_aux:
            out, pullback, aux = vjp(f, *dyn, has_aux=True)
        else:
            (out, pullback), aux = vjp(f, *dyn), None
        _check_outputs("jacrev", out)
        out_leaves, out_tree = tree_flatten(out)

        def pull(*basis):
            return pullback(tree_unflatten(out_tree, basis))

        jac = vmap(pull)(*_std_basis(out_leaves))
        jac = jac[0] if single else jac
        example = dyn[0] if single else dyn

        def unravel(in_leaf, arr):
            trail = tuple(get_aval(in_leaf).shape)
            blocks = _split_axis(arr, 0, out_leaves, trail, trail=False)
            return tree_unflatten(out_tree, blocks)

        jac = tree_map(unravel, example, jac)
        jac = jax.tree_util.tree_transpose(tree_structure(example), out_tree, jac)
        return (jac, aux) if has_aux else jac

    return jac_fun


def hessian(fun, argnums=0):
    """The Hessian of `fun` with respect to `argnums`: `jacfwd(jacrev(fun))`.

    Args:
      fun: function of pytrees of float arrays with a pytree output (usually a scalar).
      argnums: int or tuple of ints: the arguments to differentiate.

    Returns:
      A function returning the Hessian, with JAX's structure: for a scalar function of
      one array `x`, an array of shape `x.shape + x.shape`.

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.hessian(lambda x: fnp.sum(x ** 3))(jnp.array([1.0, 2.0]))
      Array([[ 6.,  0.],
             [ 0., 12.]], dtype=float32)
    """
    check_callable("hessian", fun)
    return jacfwd(jacrev(fun, argnums), argnums)


def hvp(fun, primals, tangents):
    """The Hessian-vector product of a scalar `fun` at `primals` along `tangents`.

    Forward-over-reverse: the `jvp` of `grad(fun)`, which costs a small constant times one
    gradient and never forms the Hessian.

    Args:
      fun: function with a real scalar output.
      primals: tuple or list of the arguments (the point).
      tangents: tuple or list like `primals` (the vector).

    Returns:
      `H v` shaped like the primals: the single result for one primal, or a tuple with one
      entry per primal (the Hessian is then the one over all arguments together).

    Example:
      >>> import jax.numpy as jnp
      >>> import functrans as ft, functrans.numpy as fnp
      >>> ft.hvp(lambda x: fnp.sum(x ** 3), (jnp.array([1.0, 2.0]),), (jnp.array([1.0, 1.0]),))
      Array([ 6., 12.], dtype=float32)
    """
    for name, v in (("primals", primals), ("tangents", tangents)):
        if not isinstance(v, (tuple, list)):
            raise TypeError(
                f"`hvp` takes `{name}` as a tuple or list with one entry per argument, got "
                f"{type(v).__name__} instead. Write `ft.hvp(f, (x,), (v,))`."
            )
    if len(primals) == 1:
        return jvp(grad(fun), tuple(primals), tuple(tangents))[1]
    g = grad(fun, argnums=tuple(range(len(primals))))
    return jvp(g, tuple(primals), tuple(tangents))[1]


__all__ = ["hessian", "hvp", "jacfwd", "jacrev"]
