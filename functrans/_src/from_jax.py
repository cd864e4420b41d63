"""`ft.from_jax`: interpret a JAX function's jaxpr with functrans primitives (in progress)."""

from __future__ import annotations


def from_jax(fun):
    raise NotImplementedError("`ft.from_jax` is not implemented yet.")
