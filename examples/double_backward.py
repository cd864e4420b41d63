"""Double backward, the two motivating examples, each answer printed beside JAX's.

1. The PyTorch pitfall: with a = 1, b = 2, c = a*a*b and d = (a + dc/da) * b, the true
   dd/da is 10. PyTorch gives 2 unless `create_graph=True` is passed to the inner
   `autograd.grad`; functrans needs no flag.
2. NNabla's sigmoid examples (the "double backward" post): plain backprop, graph expansion
   (the derivative is a graph of the same primitives, so it can be differentiated again),
   and a gradient penalty on a 16x3x32x32 input drawn with `RandomState(313)`.

Run: `python examples/double_backward.py`
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp


def show(label, ours, jaxs):
    ours, jaxs = np.asarray(ours), np.asarray(jaxs)
    ok = np.allclose(ours, jaxs, rtol=1e-5, atol=1e-6)
    if ours.size == 1:
        print(f"  {label:<44} functrans {float(ours):>12.6f}   jax {float(jaxs):>12.6f}   "
              f"{'ok' if ok else 'MISMATCH'}")  # fmt: skip
    else:
        err = float(np.max(np.abs(ours - jaxs)))
        print(f"  {label:<44} shape {ours.shape}, max |functrans - jax| = {err:.2e}   "
              f"{'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return ok


def pytorch_pitfall():
    print("1. The PyTorch pitfall: a=1, b=2, c=a*a*b, d=(a + dc/da)*b; dd/da should be 10")
    b = 2.0

    def d_ft(a):
        dc_da = ft.grad(lambda a: a * a * b)(a)  # an ordinary gradient, no flag
        return (a + dc_da) * b

    def d_jax(a):
        dc_da = jax.grad(lambda a: a * a * b)(a)
        return (a + dc_da) * b

    return show("dd/da", ft.grad(d_ft)(1.0), jax.grad(d_jax)(1.0))


def nnabla_sigmoid():
    print("2. NNabla's sigmoid examples")
    ok = True
    x = 0.5
    # (a) backprop: dy/dx of y = sigmoid(x)
    ok &= show("backprop: dy/dx at 0.5", ft.grad(fnn.sigmoid)(x), jax.grad(jax.nn.sigmoid)(x))
    # (b) graph expansion: the derivative is itself a graph, differentiated again
    dy = ft.grad(fnn.sigmoid)
    ok &= show(
        "graph expansion: d2y/dx2 at 0.5", ft.grad(dy)(x), jax.grad(jax.grad(jax.nn.sigmoid))(x)
    )
    print("  the expanded graph of d2y/dx2:")
    print("    " + str(ft.make_graph(ft.grad(dy))(x).simplify()).replace("\n", "\n    "))

    # (c) gradient penalty on a 16x3x32x32 input
    xs = np.random.RandomState(313).randn(16, 3, 32, 32).astype(np.float32)

    def penalty(np_, nn_, grad, x):
        g = grad(lambda x: np_.sum(nn_.sigmoid(x)))(x)
        norms = np_.sqrt(np_.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))
        return np_.mean((norms - 1.0) ** 2)

    gp_ft = penalty(fnp, fnn, ft.grad, xs)
    gp_jax = penalty(jnp, jax.nn, jax.grad, xs)
    ok &= show("gradient penalty value", gp_ft, gp_jax)
    d_ft = ft.grad(lambda x: penalty(fnp, fnn, ft.grad, x))(xs)
    d_jax = jax.grad(lambda x: penalty(jnp, jax.nn, jax.grad, x))(xs)
    ok &= show("d(penalty)/dx", d_ft, d_jax)
    return ok


def main():
    ok = pytorch_pitfall()
    ok &= nnabla_sigmoid()
    print("all answers agree with JAX" if ok else "SOME ANSWERS DISAGREE WITH JAX")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
