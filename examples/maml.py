"""MAML on sinusoid regression: a meta-gradient through a gradient step.

Model-agnostic meta-learning (Finn, Abbeel and Levine, 2017, "Model-Agnostic Meta-Learning
for Fast Adaptation of Deep Networks") looks for initial parameters `theta` from which one
gradient step on a few examples of a new task already fits that task well. Each task is a
sinusoid `y = A sin(x + phi)` with random amplitude and phase; the network sees `K = 10`
points of it (the support set), takes one step

    theta_task = theta - alpha * grad(loss_support)(theta),

and is scored on fresh points of the same sinusoid (the query set). The meta-gradient of the
query loss with respect to `theta` passes through `grad(loss_support)`, so it contains the
Hessian of the support loss: a derivative of a derivative. functrans writes it as plainly as
the maths, `ft.grad(meta_loss)` around `ft.vmap` (over tasks) around `ft.grad` (the inner
step), all compiled by `jax.jit`.

First-order MAML drops that Hessian term by treating the inner gradient as a constant
(`ft.stop_gradient`). Both variants are trained from the same start on the same tasks, and
both are scored before and after adaptation on the same held-out tasks.

Run: `python examples/maml.py --steps 20000`
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import functrans as ft
import functrans.numpy as fnp

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, np.pi)
X_RANGE = (-5.0, 5.0)


def init_mlp(key, sizes=(1, 40, 40, 1), dtype=jnp.float32):
    """Returns a list `[W1, b1, W2, b2, ...]`: Glorot-normal weights and zero biases.

    A small start matters here: with He scaling, inputs up to 5 make the first inner step of
    size 0.01 overshoot, and an untrained network gets worse by adapting.
    """
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
        params.append(
            jax.random.normal(k, (n_in, n_out), dtype) * float(np.sqrt(2.0 / (n_in + n_out)))
        )
        params.append(jnp.zeros((n_out,), dtype))
    return params


def predict(params, x):
    """The MLP on inputs `x` of shape `(n, 1)`: ReLU hidden layers, a linear output."""
    h = x
    for w, b in zip(params[:-2:2], params[1:-2:2]):
        h = fnp.maximum(h @ w + b, 0.0)
    return h @ params[-2] + params[-1]


def mse(params, x, y):
    """Mean squared error of the MLP on one set of points."""
    return fnp.mean((predict(params, x) - y) ** 2)


def adapt(params, x, y, alpha, first_order=False, inner_steps=1):
    """Takes `inner_steps` gradient steps of size `alpha` on the support set `(x, y)`.

    With `first_order=True` the inner gradient is a constant to every outer derivative
    (first-order MAML); otherwise the outer gradient flows through it (second-order MAML).
    """
    for _ in range(inner_steps):
        g = ft.grad(mse)(params, x, y)
        if first_order:
            g = ft.stop_gradient(g)
        params = [p - alpha * gp for p, gp in zip(params, g)]
    return params


def meta_loss(params, tasks, alpha, first_order=False, inner_steps=1):
    """Mean query loss after adaptation, over a batch of tasks.

    Args:
      params: the shared initial parameters (a list of arrays).
      tasks: a tuple `(x_support, y_support, x_query, y_query)`, each `(tasks, K, 1)`.
      alpha: the inner learning rate.
      first_order: drop the second-order term of the meta-gradient.
      inner_steps: adaptation steps per task (training uses one).

    Returns:
      The scalar meta-loss.
    """

    def one_task(xs, ys, xq, yq):
        return mse(adapt(params, xs, ys, alpha, first_order, inner_steps), xq, yq)

    return fnp.mean(ft.vmap(one_task)(*tasks))


def sample_tasks(key, n_tasks, k_support, k_query, dtype=jnp.float32):
    """Draws `n_tasks` sinusoids and their support and query points (plain JAX).

    Returns:
      `((x_support, y_support, x_query, y_query), (amplitude, phase))`.
    """
    ka, kp, ks, kq = jax.random.split(key, 4)
    amp = jax.random.uniform(ka, (n_tasks, 1, 1), dtype, *AMPLITUDE)
    phase = jax.random.uniform(kp, (n_tasks, 1, 1), dtype, *PHASE)
    xs = jax.random.uniform(ks, (n_tasks, k_support, 1), dtype, *X_RANGE)
    xq = jax.random.uniform(kq, (n_tasks, k_query, 1), dtype, *X_RANGE)
    wave = lambda x: amp * jnp.sin(x + phase)
    return (xs, wave(xs), xq, wave(xq)), (amp, phase)


@functools.partial(jax.jit, static_argnums=3)
def _scores(params, tasks, alpha, inner_steps):
    pre = mse(params, tasks[2].reshape(-1, 1), tasks[3].reshape(-1, 1))
    return pre, meta_loss(params, tasks, alpha, inner_steps=inner_steps)


def evaluate(params, tasks, alpha, inner_steps=1):
    """Mean query loss before and after `inner_steps` adaptation steps on `tasks`."""
    pre, post = _scores(params, tasks, alpha, inner_steps)
    return float(pre), float(post)


def main(
    steps: int = 3000,
    seed: int = 0,
    n_tasks: int = 16,
    k_shot: int = 10,
    alpha: float = 0.01,
    meta_lr: float = 3e-3,
    hidden: int = 40,
    n_eval: int = 200,
    progress: bool = True,
) -> dict:
    """Trains second-order and first-order MAML from the same start and scores both.

    Args:
      steps: meta-training steps of each variant.
      seed: seed of the initial parameters, the training tasks and the held-out tasks.
      n_tasks: tasks per meta-batch.
      k_shot: support (and query) points per task.
      alpha: inner learning rate.
      meta_lr: Adam learning rate of the meta-optimiser.
      hidden: width of the two hidden layers.
      n_eval: number of held-out tasks for scoring.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `init` (the shared initial parameters), and for each variant
      `"second"` and `"first"` under `params`, `history` (meta-loss per step), `pre` and
      `post` (held-out query loss before and after one adaptation step); `init_pre` and
      `init_post` score the untrained start; `eval_tasks` and `eval_waves` are the held-out
      tasks and their `(amplitude, phase)`.
    """
    key_init, key_train, key_eval = jax.random.split(jax.random.key(seed), 3)
    init = init_mlp(key_init, (1, hidden, hidden, 1))
    eval_tasks, eval_waves = sample_tasks(key_eval, n_eval, k_shot, 50)
    opt = optax.adam(meta_lr)

    def make_step(first_order):
        @jax.jit
        def step(params, state, key):
            tasks, _ = sample_tasks(key, n_tasks, k_shot, k_shot)
            loss, g = ft.value_and_grad(meta_loss)(params, tasks, alpha, first_order)
            updates, state = opt.update(g, state, params)
            return optax.apply_updates(params, updates), state, loss

        return step

    out = {"init": init, "params": {}, "history": {}, "pre": {}, "post": {}}
    out["init_pre"], out["init_post"] = evaluate(init, eval_tasks, alpha)
    keys = jax.random.split(key_train, steps)
    for name, first_order in (("second", False), ("first", True)):
        step = make_step(first_order)
        params, state, history = init, opt.init(init), []
        bar = tqdm(keys, desc=f"{name}-order MAML", disable=not progress)
        for i, key in enumerate(bar):
            params, state, loss = step(params, state, key)
            history.append(loss)
            if progress and i % 200 == 0:
                bar.set_postfix(meta_loss=f"{float(loss):.3f}")
        out["params"][name] = params
        out["history"][name] = np.asarray(jnp.stack(history)) if history else np.zeros(0)
        out["pre"][name], out["post"][name] = evaluate(params, eval_tasks, alpha)
    out["eval_tasks"], out["eval_waves"] = eval_tasks, eval_waves
    return out


def summary(out):
    """Prints what was checked and the numbers."""
    print(f"held-out query MSE over {out['eval_tasks'][0].shape[0]} sinusoids, one step:")
    print(f"  untrained start     before {out['init_pre']:.3f}  after {out['init_post']:.3f}")
    for name in ("second", "first"):
        print(
            f"  {name:<6}-order MAML before {out['pre'][name]:.3f}  after {out['post'][name]:.3f}"
        )
    ok = all(out["post"][n] < out["pre"][n] for n in ("second", "first"))
    print("post-adaptation loss beats pre-adaptation loss" if ok else "ADAPTATION DID NOT HELP")
    return ok


def cli(argv=None, progress=True):
    """Parses the command line (`--steps`, `--seed`, `--alpha`), trains, prints the summary.

    Returns:
      The dict of `main`, with `ok` added: whether the printed check passed.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="meta-training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.01, help="inner learning rate")
    args = parser.parse_args(argv)
    out = main(steps=args.steps, seed=args.seed, alpha=args.alpha, progress=progress)
    out["ok"] = summary(out)
    return out


if __name__ == "__main__":
    raise SystemExit(0 if cli()["ok"] else 1)
