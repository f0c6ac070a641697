"""Reference values for element-wise ops, reductions, views and matmul."""
import torch
import torch.nn.functional as F
from common import case, randn, save

cases = []
x = randn(3, 5, seed=1, scale=2.0)
pos = randn(3, 5, seed=2).abs() + 0.1
unary = {
    "neg": lambda t: -t,
    "abs": torch.abs,
    "exp": torch.exp,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "softplus": F.softplus,
    "erf": torch.erf,
    "square": torch.square,
}
for name, f in unary.items():
    cases.append(case(name, name, [x], f(x)))
# Wide range for exp/tanh/sigmoid/gelu (saturation, underflow).
wide = torch.linspace(-30, 30, 121)
for name in ["exp", "tanh", "sigmoid", "gelu", "silu", "softplus", "erf"]:
    cases.append(case(name + "_wide", name, [wide], unary[name](wide)))
for name, f in {"log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt}.items():
    cases.append(case(name, name, [pos], f(pos)))

a = randn(2, 3, 4, seed=3)
b = randn(3, 1, seed=4) + 0.5 * torch.sign(randn(3, 1, seed=4))
binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
          "maximum": torch.maximum, "minimum": torch.minimum}
for name, f in binary.items():
    cases.append(case(name, name, [a, b], f(a, b)))
    cases.append(case(name + "_same_shape", name, [a, a.flip(0)], f(a, a.flip(0))))
base = randn(2, 3, seed=5).abs() + 0.5
expo = randn(2, 3, seed=6)
cases.append(case("pow", "pow", [base, expo], torch.pow(base, expo)))
cases.append(case("pow_broadcast", "pow", [base, torch.tensor([2.0, 0.5, -1.0])], torch.pow(base, torch.tensor([2.0, 0.5, -1.0]))))

r = randn(2, 3, 4, 5, seed=7)
for axes in [[0], [1], [3], [0, 2], [1, 3], [0, 1, 2, 3], [2, 3]]:
    for keep in [False, True]:
        tag = "_".join(map(str, axes)) + ("_keep" if keep else "")
        cases.append(case(f"sum_{tag}", "sum", [r], r.sum(dim=axes, keepdim=keep), axes=axes, keepDims=keep))
        cases.append(case(f"mean_{tag}", "mean", [r], r.mean(dim=axes, keepdim=keep), axes=axes, keepDims=keep))
        cases.append(case(f"max_{tag}", "max", [r], r.amax(dim=axes, keepdim=keep), axes=axes, keepDims=keep))
        cases.append(case(f"min_{tag}", "min", [r], r.amin(dim=axes, keepdim=keep), axes=axes, keepDims=keep))
        for corr in [0, 1]:
            cases.append(case(f"var{corr}_{tag}", "variance", [r], r.var(dim=axes, keepdim=keep, correction=corr),
                              axes=axes, keepDims=keep, correction=corr))
for axis in [0, 1, 3, -1]:
    cases.append(case(f"argmax_{axis}", "argmax", [r], r.argmax(dim=axis).float(), axis=axis))

m1 = randn(4, 5, seed=8)
m2 = randn(5, 3, seed=9)
cases.append(case("matmul_2d", "matmul", [m1, m2], m1 @ m2))
b1 = randn(2, 3, 4, 5, seed=10)
b2 = randn(3, 5, 6, seed=11)
cases.append(case("matmul_broadcast_batch", "matmul", [b1, b2], b1 @ b2))
cases.append(case("matmul_vector_right", "matmul", [m1, randn(5, seed=12)], m1 @ randn(5, seed=12)))
cases.append(case("matmul_vector_left", "matmul", [randn(4, seed=13), m1], randn(4, seed=13) @ m1))
big1 = randn(3, 70, 130, seed=14)
big2 = randn(130, 90, seed=15)
cases.append(case("matmul_large", "matmul", [big1, big2], big1 @ big2))
w = randn(6, 5, seed=16)
bias = randn(6, seed=17)
xl = randn(2, 3, 5, seed=18)
cases.append(case("linear", "linear", [xl, w, bias], F.linear(xl, w, bias)))
cases.append(case("linear_no_bias", "linear", [xl, w], F.linear(xl, w)))
save("core", cases)
