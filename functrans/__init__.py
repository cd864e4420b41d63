"""functrans: composable function transformations with explicit derivative graphs.

>>> import functrans as ft, functrans.numpy as fnp
>>> ft.grad(ft.grad(lambda x: x ** 3))(2.0)
Array(12., dtype=float32, weak_type=True)
"""

from . import lax, nn, numpy
from ._src.api import grad, jvp, linearize, stop_gradient, value_and_grad, vjp
from ._src.graph import Graph, make_graph

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "make_graph",
    "grad",
    "jvp",
    "lax",
    "linearize",
    "nn",
    "numpy",
    "stop_gradient",
    "value_and_grad",
    "vjp",
]
