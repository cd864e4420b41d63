"""functrans: composable function transformations with explicit derivative graphs.

>>> import functrans as ft, functrans.numpy as fnp
>>> float(ft.grad(ft.grad(lambda x: x ** 3))(2.0))
12.0
"""

from . import lax, nn, numpy
from ._src.api import grad, jvp, linearize, stop_gradient, value_and_grad, vjp
from ._src.batching import vmap
from ._src.checkpoint import checkpoint, remat
from ._src.custom import custom_jvp, custom_vjp
from ._src.from_jax import from_jax
from ._src.graph import Graph, make_graph
from ._src.jacobians import hessian, hvp, jacfwd, jacrev
from ._src.jet import derivatives, jet
from ._src.jit import jit
from .testing import check_grads

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "make_graph",
    "check_grads",
    "checkpoint",
    "custom_jvp",
    "custom_vjp",
    "derivatives",
    "from_jax",
    "grad",
    "hessian",
    "hvp",
    "jacfwd",
    "jacrev",
    "jet",
    "jit",
    "jvp",
    "lax",
    "linearize",
    "nn",
    "numpy",
    "remat",
    "stop_gradient",
    "value_and_grad",
    "vjp",
    "vmap",
]
