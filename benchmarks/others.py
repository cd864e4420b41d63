"""Optional columns: PyTorch eager (`create_graph=True`) and HIPS autograd.

Every workload is written here again the way users of each library write it: PyTorch with
`torch.autograd.grad(..., create_graph=True)` (a loop over tasks for MAML, batched
`grad_outputs` for the Hessian and the per-sample Jacobians), autograd with its `grad`,
`hessian`, `hessian_vector_product` and `jacobian` (a loop over tasks: it has no `vmap`).
Same shapes, one thread, same seeds as `workloads.py` (so the same data), steady-state time
per call; `tests/test_benchmarks.py` checks every one against JAX where the package is
installed.
"""

from __future__ import annotations

import numpy as np

from benchmarks import workloads as W


def _torch_workloads(torch, order=W.ORDER):
    t = lambda a: torch.tensor(np.asarray(a))
    F = torch.nn.functional

    def leaves(params):
        pairs = [(t(w).requires_grad_(True), t(b).requires_grad_(True)) for w, b in params]
        return pairs, [p for pair in pairs for p in pair]

    mlp = lambda pairs, x, act: W._mlp(None, pairs, x, act)  # the workloads' own MLP

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
        pairs, flat = leaves(params)
        x, y = t(x), t(y)

        def call():
            logits = mlp(pairs, x, torch.tanh)
            loss = -(y * torch.log_softmax(logits, -1)).sum(-1).mean()
            return torch.autograd.grad(loss, flat)

        return call

    def w3(fun_args):
        params, real, fake, eps = fun_args
        pairs, flat = leaves(params)
        real, fake, eps = t(real), t(fake), t(eps)
        critic = lambda x: mlp(pairs, x, lambda h: F.leaky_relu(h, 0.2))

        def call():
            inter, g = grad(lambda z: critic(z).sum(), eps * real + (1.0 - eps) * fake)
            gp = ((torch.sqrt((g * g).sum(1)) - 1.0) ** 2).mean()
            loss = critic(fake).mean() - critic(real).mean() + 10.0 * gp
            return torch.autograd.grad(loss, flat)

        return call

    def w4(fun_args):
        # MAML as PyTorch users write it: a loop over tasks, the inner gradient with
        # create_graph=True so the meta-gradient flows through it.
        params, x_tr, y_tr, x_te, y_te = fun_args
        pairs, flat = leaves(params)
        x_tr, y_tr, x_te, y_te = t(x_tr), t(y_tr), t(x_te), t(y_te)
        mse = lambda ps, x, y: ((mlp(ps, x, torch.relu) - y) ** 2).mean()

        def call():
            losses = []
            for i in range(x_tr.shape[0]):
                gs = torch.autograd.grad(mse(pairs, x_tr[i], y_tr[i]), flat, create_graph=True)
                new = [p - 0.01 * g for p, g in zip(flat, gs)]
                losses.append(mse(list(zip(new[::2], new[1::2])), x_te[i], y_te[i]))
            return torch.autograd.grad(torch.stack(losses).mean(), flat)

        return call

    def w5_hessian(fun_args):
        x, w = [t(a) for a in fun_args]
        eye = torch.eye(x.shape[0], dtype=x.dtype)

        def call():
            x_, g = grad(lambda z: torch.tanh(w @ z).sum(), x)
            return torch.autograd.grad(g, x_, grad_outputs=eye, is_grads_batched=True)[0]

        return call

    def w5_hvp(fun_args):
        x, v, w = [t(a) for a in fun_args]

        def call():  # reverse over reverse: PyTorch's double backward
            x_, g = grad(lambda z: torch.tanh(w @ z).sum(), x)
            return torch.autograd.grad(g, x_, grad_outputs=v)[0]

        return call

    def w7(fun_args):
        params, x = fun_args
        pairs, flat = leaves(params)
        x = t(x)
        (w0, b0), (w1, b1) = pairs
        hidden = w0.shape[1]
        # d(code[b, j])/d(x[b]) for every sample b at once: code's rows do not mix samples,
        # so one batched backward pass per code unit gives the per-sample Jacobians.
        seeds = torch.eye(hidden, dtype=x.dtype)[:, None, :].expand(hidden, x.shape[0], hidden)

        def call():
            x_ = x.detach().requires_grad_(True)
            code = torch.sigmoid(x_ @ w0 + b0)
            recon = torch.sigmoid(code @ w1 + b1)
            (jac,) = torch.autograd.grad(
                code, x_, grad_outputs=seeds, is_grads_batched=True, create_graph=True
            )
            contractive = (jac**2).sum(dim=(0, 2)).mean()
            loss = ((recon - x) ** 2).sum(1).mean() + 0.1 * contractive
            return torch.autograd.grad(loss, flat)

        return call

    def w6(f):
        def make(fun_args):
            (x,) = [t(a) for a in fun_args]

            def call():
                x_ = x.detach().requires_grad_(True)
                y = f(x_)
                for _ in range(order):
                    (y,) = torch.autograd.grad(y, x_, create_graph=True)
                return y

            return call

        return make

    return {
        "W1 grad penalty": w1,
        "W2 MLP": w2,
        "W3 WGAN-GP": w3,
        "W4 MAML": w4,
        "W5 Hessian": w5_hessian,
        "W5 HVP": w5_hvp,
        "W6 tanh^(8)": w6(torch.tanh),
        "W6 (sin*exp)^(8)": w6(lambda x: torch.sin(x) * torch.exp(x)),
        "W7 contractive AE": w7,
    }


def _autograd_workloads(order=W.ORDER):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    sigmoid = lambda z: 1.0 / (1.0 + anp.exp(-z))

    mlp = lambda params, x, act: W._mlp(None, params, x, act)

    def w1(fun_args):
        (x,) = fun_args

        def penalty(x):
            g = autograd.grad(lambda z: anp.sum(sigmoid(z)))(x)
            norms = anp.sqrt(anp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))
            return anp.mean((norms - 1.0) ** 2)

        return lambda: autograd.grad(penalty)(x)

    def w2(fun_args):
        params, x, y = fun_args

        def loss(params):
            logits = mlp(params, x, anp.tanh)
            log_p = logits - logsumexp(logits, axis=-1, keepdims=True)
            return -anp.mean(anp.sum(y * log_p, axis=-1))

        return lambda: autograd.grad(loss)(params)

    def w3(fun_args):
        params, real, fake, eps = fun_args
        leaky = lambda h: anp.where(h >= 0, h, 0.2 * h)

        def loss(params):
            critic = lambda x: mlp(params, x, leaky)
            g = autograd.grad(lambda z: anp.sum(critic(z)))(eps * real + (1.0 - eps) * fake)
            gp = anp.mean((anp.sqrt(anp.sum(g * g, axis=1)) - 1.0) ** 2)
            return anp.mean(critic(fake)) - anp.mean(critic(real)) + 10.0 * gp

        return lambda: autograd.grad(loss)(params)

    def w4(fun_args):
        params, x_tr, y_tr, x_te, y_te = fun_args  # no vmap in autograd: a loop over tasks
        relu = lambda h: anp.where(h > 0, h, 0.0)
        mse = lambda ps, x, y: anp.mean((mlp(ps, x, relu) - y) ** 2)

        def meta_loss(params):
            total = 0.0
            for i in range(len(x_tr)):
                g = autograd.grad(mse)(params, x_tr[i], y_tr[i])
                new = [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, g)]
                total = total + mse(new, x_te[i], y_te[i])
            return total / len(x_tr)

        return lambda: autograd.grad(meta_loss)(params)

    def w5_hessian(fun_args):
        x, w = fun_args
        return lambda: autograd.hessian(lambda z: anp.sum(anp.tanh(anp.dot(w, z))))(x)

    def w5_hvp(fun_args):
        x, v, w = fun_args
        hvp = autograd.hessian_vector_product(lambda z: anp.sum(anp.tanh(anp.dot(w, z))))
        return lambda: hvp(x, v)

    def w7(fun_args):
        params, x = fun_args
        encode = lambda ps, x: sigmoid(anp.dot(x, ps[0][0]) + ps[0][1])

        def loss(params):
            code = encode(params, x)
            recon = sigmoid(anp.dot(code, params[1][0]) + params[1][1])
            # (hidden, batch, d): code's rows do not mix samples (see the PyTorch version)
            jac = autograd.jacobian(lambda z: anp.sum(encode(params, z), axis=0))(x)
            contractive = anp.mean(anp.sum(jac**2, axis=(0, 2)))
            return anp.mean(anp.sum((recon - x) ** 2, axis=1)) + 0.1 * contractive

        return lambda: autograd.grad(loss)(params)

    def w6(f):
        def make(fun_args):
            (x,) = fun_args
            g = f
            for _ in range(order):
                g = autograd.grad(g)
            return lambda: g(float(x))

        return make

    return {
        "W1 grad penalty": w1,
        "W2 MLP": w2,
        "W3 WGAN-GP": w3,
        "W4 MAML": w4,
        "W5 Hessian": w5_hessian,
        "W5 HVP": w5_hvp,
        "W6 tanh^(8)": w6(anp.tanh),
        "W6 (sin*exp)^(8)": w6(lambda x: anp.sin(x) * anp.exp(x)),
        "W7 contractive AE": w7,
    }


def suites(order=W.ORDER):
    """`{column: {workload name: make(args) -> call}}` for the packages that are installed."""
    out = {}
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(1)
        out["torch eager"] = _torch_workloads(torch, order)
    try:
        out["autograd eager"] = _autograd_workloads(order)
    except ImportError:
        pass
    return out


def run(names, budget, rounds):
    """Rows `{"workload": name, "torch eager": s, "autograd eager": s}` where written."""
    from benchmarks.run import per_call_pair

    tables = suites()
    rows = []
    for name in names:
        row = {"workload": name}
        _, args = W.build(name, W.jax_lib())  # only the data: numpy arrays, fixed seed
        for column, table in tables.items():
            if name in table:
                call = table[name](args)
                row[column] = per_call_pair([call], budget, rounds)[0]
        rows.append(row)
    return rows
