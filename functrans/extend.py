"""What users need to add their own primitives to functrans.

A primitive needs a lowering (`impl`, a function of JAX arrays), an abstract evaluation rule
(optional: `jax.eval_shape` of the lowering is used when it is missing), and a JVP and a VJP
rule written with functrans operations, so that they can be differentiated again:

    >>> import jax.numpy as jnp
    >>> import functrans as ft, functrans.numpy as fnp
    >>> from functrans.extend import Primitive
    >>> cube_p = Primitive("cube")
    >>> cube_p.impl = lambda x: x ** 3
    >>> cube_p.jvp = lambda primals, tangents: (cube_p.bind(primals[0]),
    ...                                         3 * primals[0] ** 2 * tangents[0])
    >>> cube_p.vjp = lambda needs, ct, out, x: (3 * x ** 2 * ct,)
    >>> float(ft.grad(ft.grad(cube_p.bind))(2.0))
    12.0

`register_jax_rule(name)` teaches `ft.from_jax` a JAX primitive it does not know yet.
"""

from ._src.core import Primitive, ShapedArray, Tracer, all_primitives, get_aval
from ._src.from_jax import register_jax_rule

__all__ = ["Primitive", "ShapedArray", "Tracer", "all_primitives", "get_aval", "register_jax_rule"]
