"""Reference Hessian spectrum of a tiny network, from the definition, for
Tests/PatchworkTests/AnalysisStatisticsTests.swift.

The model is timm's Mlp as Patchwork's `MLP(16, hidden: 12, out: 10, activation: .gelu)`:
fc1 (Linear 16 -> 12), exact (erf) GELU, fc2 (Linear 12 -> 10); 334 parameters.
The loss is the mean cross-entropy of a fixed batch of 32 inputs. The full
334 x 334 Hessian of that loss with respect to all parameters (in the order
fc1.weight, fc1.bias, fc2.weight, fc2.bias, each flattened row-major) comes
from torch.autograd.functional.hessian, in float64 (the weights and inputs are
the float32 values written to the fixtures, widened), and numpy-free
torch.linalg.eigvalsh gives its eigenvalues. Nothing here uses Patchwork's
Lanczos, power iteration or Hutchinson code.

Writes, under Tests/PatchworkTests/Fixtures/analysis-reference/hessian/:
  weights.safetensors  fc1.weight [12, 16], fc1.bias [12], fc2.weight [10, 12], fc2.bias [10] (F32)
  batch.safetensors    x [32, 16] (F32), labels [32] (I64)
  reference.json       loss, top / most negative eigenvalue, trace, all eigenvalues

Run: /work/venv/bin/python scripts/reference/hessian_reference.py (torch 2.x, CPU).
"""
import json
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(ROOT, "Tests", "PatchworkTests", "Fixtures", "analysis-reference", "hessian")

IN, HIDDEN, OUT, BATCH = 16, 12, 10, 32


def main():
    g = torch.Generator().manual_seed(2020)
    # torch.nn.Linear's default initialisation scale, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), made larger
    # for fc2 so the loss is far from a minimum and the Hessian has clearly negative eigenvalues.
    def uniform(shape, bound):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

    weights = {
        "fc1.weight": uniform((HIDDEN, IN), 1.5 / IN ** 0.5).float(),
        "fc1.bias": uniform((HIDDEN,), 0.5).float(),
        "fc2.weight": uniform((OUT, HIDDEN), 2.0 / HIDDEN ** 0.5).float(),
        "fc2.bias": uniform((OUT,), 0.5).float(),
    }
    x = torch.randn(BATCH, IN, generator=g, dtype=torch.float64).float()
    labels = torch.randint(0, OUT, (BATCH,), generator=g, dtype=torch.int64)

    names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    shapes = [weights[n].shape for n in names]
    sizes = [weights[n].numel() for n in names]
    flat = torch.cat([weights[n].double().reshape(-1) for n in names])
    xd = x.double()

    def loss(theta):
        parts = torch.split(theta, sizes)
        w1, b1, w2, b2 = (p.reshape(s) for p, s in zip(parts, shapes))
        hidden = torch.nn.functional.gelu(xd @ w1.T + b1)  # exact GELU (erf)
        logits = hidden @ w2.T + b2
        return torch.nn.functional.cross_entropy(logits, labels)  # mean over the batch

    hessian = torch.autograd.functional.hessian(loss, flat)
    hessian = (hessian + hessian.T) / 2
    eigenvalues = torch.linalg.eigvalsh(hessian)

    os.makedirs(OUT_DIR, exist_ok=True)
    save_file(weights, os.path.join(OUT_DIR, "weights.safetensors"))
    save_file({"x": x, "labels": labels}, os.path.join(OUT_DIR, "batch.safetensors"))
    reference = {
        "model": "MLP(16, hidden: 12, out: 10, activation: .gelu): fc1 -> exact GELU -> fc2",
        "loss_definition": "mean cross-entropy over the 32 rows of batch.safetensors",
        "parameters": int(flat.numel()),
        "loss": float(loss(flat)),
        "top_eigenvalue": float(eigenvalues[-1]),
        "most_negative_eigenvalue": float(eigenvalues[0]),
        "trace": float(torch.trace(hessian)),
        "eigenvalues": [float(v) for v in eigenvalues],
        "generated_by": "scripts/reference/hessian_reference.py (torch %s, float64)" % torch.__version__,
    }
    with open(os.path.join(OUT_DIR, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print("loss %.6f  top %.6f  most negative %.6f  trace %.6f" % (
        reference["loss"], reference["top_eigenvalue"], reference["most_negative_eigenvalue"], reference["trace"]))


if __name__ == "__main__":
    main()
