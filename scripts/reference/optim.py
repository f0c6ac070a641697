"""Reference trajectories of torch.optim.SGD / AdamW and clip_grad_norm_.

Writes Tests/PatchworkTests/Fixtures/ops/optim.json (see common.py).

Optimizer cases: a tiny nn.Linear(3, 2) with fixed weight W [2, 3] and bias
b [2], inputs x [4, 3] and targets y [4, 2]; loss = mean((x W^T + b - y)^2) · loss_scale.
Three steps of the optimizer; the outputs are (W, b) after each step, then
the three losses. Weight decay goes to W only (rank 2), never to the bias,
through two param groups, as Patchwork's optimizers decide by rank.

inputs: W, b, x, y
outputs: W1, b1, W2, b2, W3, b3, losses[3]

clip cases: inputs are gradients; outputs are the clipped gradients, then
the total norm (shape [1]).
"""
import torch

from common import case, randn, save


def trajectory(name, make_opt, loss_scale=1.0, **args):
    W0 = randn(2, 3, seed=11, scale=0.5)
    b0 = randn(2, seed=12, scale=0.5)
    x = randn(4, 3, seed=13)
    y = randn(4, 2, seed=14)
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(W0)
        lin.bias.copy_(b0)
    opt = make_opt([{"params": [lin.weight]}, {"params": [lin.bias], "weight_decay": 0.0}])
    outputs, losses = [], []
    for _ in range(3):
        opt.zero_grad()
        loss = ((lin(x) - y) ** 2).mean() * loss_scale
        loss.backward()
        opt.step()
        losses.append(loss.item())
        outputs += [lin.weight.detach().clone(), lin.bias.detach().clone()]
    outputs.append(torch.tensor(losses))
    return case(name, args["kind"], [W0, b0, x, y], outputs, loss_scale=loss_scale, **args)


cases = []
sgd = torch.optim.SGD
adamw = torch.optim.AdamW
cases.append(trajectory("sgd_plain", lambda g: sgd(g, lr=0.1), kind="sgd", lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0))
cases.append(trajectory("sgd_momentum", lambda g: sgd(g, lr=0.1, momentum=0.9), kind="sgd", lr=0.1, momentum=0.9,
                        nesterov=False, weight_decay=0.0))
cases.append(trajectory("sgd_nesterov", lambda g: sgd(g, lr=0.1, momentum=0.9, nesterov=True), kind="sgd", lr=0.1,
                        momentum=0.9, nesterov=True, weight_decay=0.0))
cases.append(trajectory("sgd_weight_decay", lambda g: sgd(g, lr=0.1, momentum=0.9, weight_decay=0.05), kind="sgd",
                        lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.05))
cases.append(trajectory("sgd_nesterov_weight_decay", lambda g: sgd(g, lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1),
                        kind="sgd", lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1))
cases.append(trajectory("adamw_default", lambda g: adamw(g, lr=0.01), kind="adamw", lr=0.01, beta1=0.9, beta2=0.999,
                        eps=1e-8, weight_decay=0.01))
cases.append(trajectory("adamw_decay", lambda g: adamw(g, lr=0.05, weight_decay=0.05), kind="adamw", lr=0.05, beta1=0.9,
                        beta2=0.999, eps=1e-8, weight_decay=0.05))
# beta1 = 0.3: lerp weight 0.7 takes torch's other lerp branch.
cases.append(trajectory("adamw_betas", lambda g: adamw(g, lr=0.02, betas=(0.3, 0.95), eps=1e-6, weight_decay=0.5),
                        kind="adamw", lr=0.02, beta1=0.3, beta2=0.95, eps=1e-6, weight_decay=0.5))
# Gradients of order 1e-8, where eps shapes the step.
cases.append(trajectory("adamw_tiny_gradients", lambda g: adamw(g, lr=0.01, eps=1e-8), loss_scale=1e-8, kind="adamw",
                        lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01))

# clip_grad_norm_
for name, max_norm, scale in [("clip_active", 1.0, 3.0), ("clip_inactive", 100.0, 1.0), ("clip_zero_norm", 0.5, 0.0)]:
    grads = [randn(3, 4, seed=21, scale=scale), randn(5, seed=22, scale=scale), randn(2, 2, 2, seed=23, scale=scale)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    cases.append(case(name, "clip_grad_norm", grads, [p.grad for p in params] + [total.reshape(1)], max_norm=max_norm))

save("optim", cases)
