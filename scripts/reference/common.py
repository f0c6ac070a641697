"""Shared helpers for generating Patchwork's op reference values with PyTorch.

Each script in this folder writes one JSON file under
Tests/PatchworkTests/Fixtures/ops/. The values were generated once and are
committed; the tests never need Python. Regenerate with
`python3 scripts/reference/<group>.py` (torch 2.x, CPU).

Layout: Patchwork is channels-last. Scripts convert PyTorch's NCHW inputs and
outputs to NHWC (and conv weights OIHW -> OHWI) before writing, so the JSON
holds exactly what the Swift test feeds and expects.
"""
import json
import os

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(ROOT, "Tests", "PatchworkTests", "Fixtures", "ops")


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64).float() * scale


def tensor(t):
    t = t.detach().contiguous().float()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def nchw_to_nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def oihw_to_ohwi(t):
    return t.permute(0, 2, 3, 1).contiguous()


def case(name, op, inputs, output, **args):
    """One case: op name, its arguments, input tensors, expected output tensor(s)."""
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return {
        "name": name,
        "op": op,
        "args": args,
        "inputs": [tensor(t) for t in inputs],
        "outputs": [tensor(t) for t in outputs],
    }


def save(group, cases):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, f"{group}.json")
    with open(path, "w") as f:
        json.dump({"generator": f"torch {torch.__version__}", "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {os.path.relpath(path, ROOT)}")
