"""Optional columns: PyTorch eager (`create_graph=True`) and HIPS autograd.

Each is written here for the workloads whose structure translates directly (a gradient of a
gradient, an MLP, the n-th derivative); the others print "n/a". Same shapes, float32, one
thread, same seeds as `workloads.py` (so the same data), steady-state time per call.
"""

from __future__ import annotations

import numpy as np

from benchmarks import workloads as W


def _torch_workloads(torch):
    t = lambda a: torch.tensor(np.asarray(a))

    def grad(f, x):
        x = x.detach().requires_grad_(True)
        return x, torch.autograd.grad(f(x), x, create_graph=True)[0]

    def w1(fun_args):
        (x,) = [t(a) for a in fun_args]

        def call():
            x_, g = grad(lambda z: torch.sigmoid(z).sum(), x)
            norms = torch.sqrt((g.reshape(g.shape[0], -1) ** 2).sum(1))
            return torch.autograd.grad(((norms - 1.0) ** 2).mean(), x_)[0]

        return call

    def w2(fun_args):
        params, x, y = fun_args
        params = [(t(w).requires_grad_(True), t(b).requires_grad_(True)) for w, b in params]
        x, y = t(x), t(y)
        flat = [p for pair in params for p in pair]

        def call():
            h = x
            for w, b in params[:-1]:
                h = torch.tanh(h @ w + b)
            logits = h @ params[-1][0] + params[-1][1]
            loss = -(y * torch.log_softmax(logits, -1)).sum(-1).mean()
            return torch.autograd.grad(loss, flat)

        return call

    def w6(f):
        def make(fun_args):
            (x,) = [t(a) for a in fun_args]

            def call():
                x_ = x.detach().requires_grad_(True)
                y = f(x_)
                for _ in range(W.ORDER):
                    (y,) = torch.autograd.grad(y, x_, create_graph=True)
                return y

            return call

        return make

    return {
        "W1 grad penalty": w1,
        "W2 MLP": w2,
        "W6 tanh^(8)": w6(torch.tanh),
        "W6 (sin*exp)^(8)": w6(lambda x: torch.sin(x) * torch.exp(x)),
    }


def _autograd_workloads():
    import autograd
    import autograd.numpy as anp

    def w1(fun_args):
        (x,) = fun_args

        def penalty(x):
            g = autograd.grad(lambda z: anp.sum(1.0 / (1.0 + anp.exp(-z))))(x)
            norms = anp.sqrt(anp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))
            return anp.mean((norms - 1.0) ** 2)

        return lambda: autograd.grad(penalty)(x)

    def w6(f):
        def make(fun_args):
            (x,) = fun_args
            g = f
            for _ in range(W.ORDER):
                g = autograd.grad(g)
            return lambda: g(float(x))

        return make

    return {
        "W1 grad penalty": w1,
        "W6 tanh^(8)": w6(anp.tanh),
        "W6 (sin*exp)^(8)": w6(lambda x: anp.sin(x) * anp.exp(x)),
    }


def run(names, budget, rounds):
    """Rows `{"workload": name, "torch eager": s, "autograd eager": s}` where written."""
    from benchmarks.run import per_call_pair

    suites = {}
    try:
        import torch

        torch.set_num_threads(1)
        suites["torch eager"] = _torch_workloads(torch)
    except ImportError:
        pass
    try:
        suites["autograd eager"] = _autograd_workloads()
    except ImportError:
        pass
    rows = []
    for name in names:
        row = {"workload": name}
        _, args = W.build(name, W.jax_lib())  # only the data: numpy arrays, fixed seed
        for column, table in suites.items():
            if name in table:
                call = table[name](args)
                row[column] = per_call_pair([call], budget, rounds)[0]
        rows.append(row)
    return rows
