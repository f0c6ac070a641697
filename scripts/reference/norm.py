"""Reference values for softmax, normalisation layers, cross-entropy.

PyTorch's batch and group norm take channels-first input ([B, C, H, W] or
[B, C, L]); inputs and outputs are written channels-last ([B, H, W, C],
[B, L, C]), which is what Patchwork takes. Batch norm in training mode
reports the batch mean and the unbiased batch variance that PyTorch folds
into its running statistics (read here with momentum 1). The *_grad cases
hold PyTorch's gradients of sum(f(inputs) * gy) for a fixed gy (the last
input).
"""
import torch
import torch.nn.functional as F
from common import case, nchw_to_nhwc, randn, save

torch.manual_seed(0)
cases = []


def cl(t):
    """Channels-first to channels-last: [B, C, H, W] -> [B, H, W, C], [B, C, L] -> [B, L, C]."""
    if t.dim() == 4:
        return nchw_to_nhwc(t)
    if t.dim() == 3:
        return t.permute(0, 2, 1).contiguous()
    return t


# Softmax and log-softmax: several axes, ragged row lengths, large magnitudes.
x3 = randn(3, 5, 7, seed=1, scale=2.0)
row37 = randn(2, 37, seed=2, scale=3.0)
large = randn(4, 20, seed=3, scale=1e3)
large[3] = 1000.0  # a constant row at 1e3
large[2, :10] = -1000.0
for name, f in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
    for axis in [-1, 0, 1]:
        cases.append(case(f"{name}_axis{axis}", name, [x3], f(x3, dim=axis), axis=axis))
    cases.append(case(f"{name}_row37", name, [row37], f(row37, dim=-1), axis=-1))
    cases.append(case(f"{name}_large_last", name, [large], f(large, dim=-1), axis=-1))
    cases.append(case(f"{name}_large_axis0", name, [large], f(large, dim=0), axis=0))

# Layer norm over the last dimension (timm LayerNorm; LayerNorm2d is the same on NHWC).
ln_x = randn(2, 3, 8, seed=10)
ln_w = randn(8, seed=11) * 0.5 + 1
ln_b = randn(8, seed=12) * 0.5
cases.append(case("layer_norm_affine", "layer_norm", [ln_x, ln_w, ln_b], F.layer_norm(ln_x, (8,), ln_w, ln_b, 1e-5), eps=1e-5))
cases.append(case("layer_norm_plain", "layer_norm", [ln_x], F.layer_norm(ln_x, (8,), None, None, 1e-5), eps=1e-5))
wide = randn(3, 40, seed=13, scale=2.0) + 5.0  # offset mean, row length with a SIMD tail
w40, b40 = randn(40, seed=14), randn(40, seed=15)
cases.append(case("layer_norm_offset_eps1e-6", "layer_norm", [wide, w40, b40], F.layer_norm(wide, (40,), w40, b40, 1e-6), eps=1e-6))
outlier = randn(2, 48, seed=16)
outlier[:, 0] = 300.0  # one massive channel
cases.append(case("layer_norm_outlier", "layer_norm", [outlier], F.layer_norm(outlier, (48,), None, None, 1e-6), eps=1e-6))
nchw = randn(2, 6, 3, 4, seed=17)
w6, b6 = randn(6, seed=18), randn(6, seed=19)
ln2d = F.layer_norm(nchw.permute(0, 2, 3, 1), (6,), w6, b6, 1e-6)  # timm LayerNorm2d
cases.append(case("layer_norm_2d", "layer_norm", [cl(nchw), w6, b6], ln2d, eps=1e-6))

# Batch norm, evaluation form.
bn_x = randn(2, 5, 3, 4, seed=20, scale=2.0) + 1.0
rm, rv = randn(5, seed=21), randn(5, seed=22).abs() + 0.5
w5, b5 = randn(5, seed=23), randn(5, seed=24)
cases.append(case("batch_norm_eval_nhwc", "batch_norm_eval", [cl(bn_x), rm, rv, w5, b5],
                  cl(F.batch_norm(bn_x, rm, rv, w5, b5, training=False, eps=1e-5)), eps=1e-5))
bn_2d = randn(6, 5, seed=25)
cases.append(case("batch_norm_eval_bc_plain", "batch_norm_eval", [bn_2d, rm, rv],
                  F.batch_norm(bn_2d, rm, rv, None, None, training=False, eps=1e-3), eps=1e-3))


# Batch norm, training form: output, batch mean, unbiased batch variance.
def bn_train(x, w, b, eps):
    mean, var = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    y = F.batch_norm(x, mean, var, w, b, training=True, momentum=1.0, eps=eps)
    return [cl(y), mean, var]


bt_x = randn(3, 4, 3, 5, seed=30, scale=1.5) - 2.0
w4, b4 = randn(4, seed=31), randn(4, seed=32)
cases.append(case("batch_norm_train_nhwc", "batch_norm_train", [cl(bt_x), w4, b4], bn_train(bt_x, w4, b4, 1e-5), eps=1e-5))
bt_bcl = randn(2, 6, 7, seed=33)
cases.append(case("batch_norm_train_tokens_plain", "batch_norm_train", [cl(bt_bcl)], bn_train(bt_bcl, None, None, 1e-5), eps=1e-5))
bt_bc = randn(6, 20, seed=34) * 3 + 10
w20, b20 = randn(20, seed=35), randn(20, seed=36)
cases.append(case("batch_norm_train_bc", "batch_norm_train", [bt_bc, w20, b20], bn_train(bt_bc, w20, b20, 1e-3), eps=1e-3))

# Group norm: several group counts, maps and tokens.
gn_x = randn(2, 6, 3, 4, seed=40, scale=2.0) + 0.5
for groups in [1, 2, 3, 6]:
    cases.append(case(f"group_norm_g{groups}", "group_norm", [cl(gn_x), w6, b6],
                      cl(F.group_norm(gn_x, groups, w6, b6, 1e-5)), groups=groups, eps=1e-5))
cases.append(case("group_norm_g2_plain", "group_norm", [cl(gn_x)], cl(F.group_norm(gn_x, 2, None, None, 1e-5)), groups=2, eps=1e-5))
gn_tok = randn(2, 32, 5, seed=41)
w32, b32 = randn(32, seed=42), randn(32, seed=43)
cases.append(case("group_norm_tokens_g8", "group_norm", [cl(gn_tok), w32, b32],
                  cl(F.group_norm(gn_tok, 8, w32, b32, 1e-6)), groups=8, eps=1e-6))

# Cross-entropy: class indices with and without label smoothing, soft targets.
logits = randn(5, 7, seed=50, scale=2.0)
labels = [3, 0, 6, 2, 3]
lt = torch.tensor(labels)
for eps in [0.0, 0.1]:
    cases.append(case(f"cross_entropy_ls{eps}", "cross_entropy", [logits], F.cross_entropy(logits, lt, label_smoothing=eps),
                      labels=labels, labelSmoothing=eps))
big = randn(5, 7, seed=51, scale=1e3)
cases.append(case("cross_entropy_large", "cross_entropy", [big], F.cross_entropy(big, lt), labels=labels, labelSmoothing=0.0))
soft = torch.softmax(randn(5, 7, seed=52), dim=-1)
for eps in [0.0, 0.2]:
    cases.append(case(f"cross_entropy_soft_ls{eps}", "cross_entropy_soft", [logits, soft],
                      F.cross_entropy(logits, soft, label_smoothing=eps), labelSmoothing=eps))


# Gradients from PyTorch's autograd: of sum(f(inputs) * gy) with respect to each input but gy.
def grads(f, inputs, gy):
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    (f(*leaves) * gy).sum().backward()
    return [t.grad for t in leaves]


sx = randn(3, 6, seed=60, scale=2.0)
gsx = randn(3, 6, seed=61)
cases.append(case("softmax_grad", "softmax_grad", [sx, gsx], grads(lambda t: torch.softmax(t, -1), [sx], gsx)))
cases.append(case("log_softmax_grad", "log_softmax_grad", [sx, gsx], grads(lambda t: torch.log_softmax(t, -1), [sx], gsx)))
lx = randn(3, 10, seed=62)
w10, b10, gl = randn(10, seed=63), randn(10, seed=64), randn(3, 10, seed=65)
cases.append(case("layer_norm_grad", "layer_norm_grad", [lx, w10, b10, gl],
                  grads(lambda t, w, b: F.layer_norm(t, (10,), w, b, 1e-5), [lx, w10, b10], gl), eps=1e-5))
bx = randn(2, 4, 2, 3, seed=66)
gb = randn(2, 4, 2, 3, seed=67)
bgrads = grads(lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True, eps=1e-5), [bx, w4, b4], gb)
cases.append(case("batch_norm_train_grad", "batch_norm_train_grad", [cl(bx), w4, b4, cl(gb)],
                  [cl(bgrads[0]), bgrads[1], bgrads[2]], eps=1e-5))
gx = randn(2, 6, 2, 3, seed=68)
gg = randn(2, 6, 2, 3, seed=69)
ggrads = grads(lambda t, w, b: F.group_norm(t, 3, w, b, 1e-5), [gx, w6, b6], gg)
cases.append(case("group_norm_grad", "group_norm_grad", [cl(gx), w6, b6, cl(gg)],
                  [cl(ggrads[0]), ggrads[1], ggrads[2]], groups=3, eps=1e-5))
cases.append(case("cross_entropy_grad", "cross_entropy_grad", [logits],
                  grads(lambda t: F.cross_entropy(t, lt, label_smoothing=0.1), [logits], torch.tensor(1.0)),
                  labels=labels, labelSmoothing=0.1))
cases.append(case("cross_entropy_soft_grad", "cross_entropy_soft_grad", [logits, soft],
                  grads(lambda t, s: F.cross_entropy(t, s), [logits, soft], torch.tensor(1.0)), labelSmoothing=0.0))
save("norm", cases)
