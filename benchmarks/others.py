"""Optional columns: PyTorch eager (`create_graph=True`) and HIPS autograd, where written.

Filled in by later work; the harness prints "n/a" for workloads missing here.
"""


def run(names, budget, rounds):
    return []
