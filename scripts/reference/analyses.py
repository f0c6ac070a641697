"""Independent reference values for Patchwork's analyses (issue 20), from the papers' definitions.

Nothing here is translated from Sources/PatchworkAnalysis: each quantity is computed from the
paper's definition in float64 PyTorch, on a small fixed model, weights and batch that are committed
with the expected values under Tests/PatchworkTests/Fixtures/analysis-reference/<quantity>/.
Tests/PatchworkTests/AnalysisReferenceTests.swift loads the same weights and batch into Patchwork and
checks that it agrees. Regenerate (torch 2.x, timm 1.0.31, safetensors, CPU):

    python3 scripts/reference/analyses.py            # all four
    python3 scripts/reference/analyses.py cka        # one of: attention-distance cka fourier shape-bias

Models: a tiny timm VisionTransformer (16x16 input, patch 4, embed 16, depth 2, 2 heads, 4 classes)
and a tiny timm ResNet (BasicBlock, one block per stage, 8 channels). Patchwork loads timm state dicts
by their key names as they are. Images are [N, H, W, 3] pixels in [0, 1] (Patchwork's layout); both
sides feed the models Patchwork's standardisation (x - 0.5) * 4.
"""
import itertools
import json
import math
import os
import sys

import torch
import timm
from safetensors.torch import save_file
from timm.models.resnet import ResNet, BasicBlock
from timm.models.vision_transformer import VisionTransformer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "PatchworkTests", "Fixtures", "analysis-reference")

VIT_KWARGS = dict(img_size=16, patch_size=4, in_chans=3, num_classes=4, embed_dim=16, depth=2, num_heads=2,
                  mlp_ratio=2.0, qkv_bias=True, class_token=True, global_pool="token")
RESNET_KWARGS = dict(layers=[1, 1, 1, 1], channels=[8, 8, 8, 8], stem_width=8, num_classes=4, in_chans=3)
IMAGE = 16


def standardise(pixels_nhwc):
    """Patchwork's input pipeline for its own runs: (x - 0.5) * 4, then NCHW for PyTorch."""
    return ((pixels_nhwc - 0.5) * 4).permute(0, 3, 1, 2)


def redraw(model, seed):
    """Weights far from timm's init (which makes attention nearly uniform and most features tiny):
    matrices ~ N(0, 1/fan_in) scaled up so attention is peaked, biases and embeddings visible,
    batch-norm statistics not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and "pos_embed" not in name and "cls_token" not in name:
                scale = 2.0 if ".qkv." in name else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(p[0].numel()))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif p.ndim == 1:
                p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.6)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) * 0.8 + 0.6)
    return model.eval()


def vit(seed=1):
    return redraw(VisionTransformer(**VIT_KWARGS), seed)


def resnet(seed=2):
    return redraw(ResNet(block=BasicBlock, **RESNET_KWARGS), seed)


def pixels(n, seed):
    return torch.rand(n, IMAGE, IMAGE, 3, generator=torch.Generator().manual_seed(seed))


def state(model, prefix):
    """The state dict under `prefix` (the fixture file also holds the batch); float32 as committed,
    num_batches_tracked kept as the integer it is."""
    return {prefix + k: (v if v.dtype == torch.int64 else v.detach().float()).contiguous()
            for k, v in model.state_dict().items()}


def write(quantity, tensors, expected):
    folder = os.path.join(OUT, quantity)
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(folder, "fixture.safetensors"))
    expected = {"generator": f"scripts/reference/analyses.py, torch {torch.__version__}, timm {timm.__version__}",
                **expected}
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, allow_nan=False)
    size = sum(os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder))
    print(f"wrote {os.path.relpath(folder, ROOT)} ({size} bytes)")


def vit_config():
    return dict(VIT_KWARGS)


def resnet_config():
    c = dict(RESNET_KWARGS)
    c["block"] = {"$type": "callable", "name": "timm.models.resnet.BasicBlock"}
    return c


# --- 1. Mean attention distance -------------------------------------------------------------------
#
# Dosovitskiy et al. (2021), Fig. 7 / Appendix D.7, and Raghu et al. (2021): for each head, the
# distance in the image between a query and each key, weighted by the attention probability, averaged
# over queries and images. Convention (the one Patchwork states in AttentionDistance.swift, and the
# one this script checks):
#   * distance between patch centres, in input pixels: patch (i, j) of a 4-pixel grid sits at
#     ((i + 0.5) * 4, (j + 0.5) * 4); the paper's "query pixel to all other pixels" is read per patch,
#     as Raghu et al. and the common reimplementations do;
#   * the class token has no place in the image: it is not a query, and its share of a query's
#     attention is left out, the remaining weights renormalised to sum to one over the patches,
#     so a head that attends only to the class token does not read as distance 0.
# The attention probabilities are recomputed here from the block's weights (softmax(q k^T / sqrt(d)))
# in float64, not read from timm's attention module.

def attention_distance():
    model = vit().double()
    images = pixels(6, seed=11)
    x = standardise(images).double()
    inputs = []
    hooks = [blk.attn.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach())) for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    grid = IMAGE // VIT_KWARGS["patch_size"]
    patch = VIT_KWARGS["patch_size"]
    centres = torch.tensor([[(i + 0.5) * patch, (j + 0.5) * patch] for i in range(grid) for j in range(grid)],
                           dtype=torch.float64)
    distance = torch.cdist(centres, centres)  # [patches, patches], Euclidean, pixels
    heads = VIT_KWARGS["num_heads"]
    layers = []
    for blk, tokens in zip(model.blocks, inputs):
        b, n, c = tokens.shape
        qkv = tokens @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
        q, k, _ = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // heads), dim=-1)  # [B, heads, N, N]
        spatial = probs[:, :, 1:, 1:]  # queries and keys that are patches (token 0 is the class token)
        weights = spatial / spatial.sum(-1, keepdim=True)
        per_query = (weights * distance).sum(-1)  # [B, heads, patches]
        per_head = per_query.mean(dim=(0, 2))
        cls_share = probs[:, :, 1:, 0].mean().item()
        layers.append({"heads": per_head.tolist(), "class_token_share": cls_share})
        print(f"attention-distance block: heads {per_head.tolist()}, mean class-token share {cls_share:.3f}")
    write("attention-distance", {"images": images, **state(model, "model.")},
          {"config": vit_config(), "image_size": IMAGE, "layers": layers})


# --- 2. Minibatch unbiased linear CKA ----------------------------------------------------------------
#
# Nguyen, Raghu & Kornblith (2021): CKA = sum_i HSIC1(K_i, L_i) / sqrt(sum_i HSIC1(K_i, K_i) sum_i HSIC1(L_i, L_i))
# over minibatches i, with K_i = X_i X_i^T (linear kernel of one layer's flattened features) and HSIC1
# the unbiased estimator of Song et al. (2012). HSIC1 is computed here as the U-statistic it is equal
# to (Song et al. 2012, Theorem 2), straight from the definition of HSIC,
#     HSIC = E[k_ij l_ij] + E[k_ij] E[l_qr] - 2 E[k_ij l_iq],
# averaged over all ordered tuples (i, j, q, r) of distinct examples; the closed form of Song et al.'s
# eq. (5) is computed too and must agree with it.

def hsic_u_statistic(k, l):
    n = k.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
        count += 1
    return total / count


def hsic_closed_form(k, l):
    n = k.shape[0]
    k = k.clone().fill_diagonal_(0)
    l = l.clone().fill_diagonal_(0)
    one = torch.ones(n, dtype=k.dtype)
    return (torch.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def vit_features(model, x):
    """Token embeddings after the position embedding (class token included), then each block's output."""
    out = []
    hooks = [model.patch_drop.register_forward_hook(lambda m, a, o: out.append(o))]
    hooks += [blk.register_forward_hook(lambda m, a, o: out.append(o)) for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def resnet_features(model, x):
    """The stem (conv, bn, relu, max-pool), then each residual block's output."""
    out = []
    modules = [model.maxpool] + [stage[i] for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
                                 for i in range(len(stage))]
    hooks = [m.register_forward_hook(lambda m, a, o: out.append(o)) for m in modules]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def cka():
    a, b = vit().double(), resnet().double()
    images = pixels(15, seed=12)
    batch = 5
    cross = None
    for start in range(0, images.shape[0], batch):
        x = standardise(images[start:start + batch]).double()
        grams_a = [(f.reshape(f.shape[0], -1) @ f.reshape(f.shape[0], -1).T) for f in vit_features(a, x)]
        grams_b = [(f.reshape(f.shape[0], -1) @ f.reshape(f.shape[0], -1).T) for f in resnet_features(b, x)]
        for g in grams_a + grams_b:
            u, c = hsic_u_statistic(g, g), hsic_closed_form(g, g)
            assert abs(u - c) <= 1e-9 * abs(u), (u, c)
        if cross is None:
            cross = torch.zeros(len(grams_a), len(grams_b), dtype=torch.float64)
            self_a = torch.zeros(len(grams_a), dtype=torch.float64)
            self_b = torch.zeros(len(grams_b), dtype=torch.float64)
        for i, ka in enumerate(grams_a):
            self_a[i] += hsic_u_statistic(ka, ka)
            for j, lb in enumerate(grams_b):
                cross[i, j] += hsic_u_statistic(ka, lb)
        for j, lb in enumerate(grams_b):
            self_b[j] += hsic_u_statistic(lb, lb)
    matrix = cross / torch.sqrt(self_a[:, None] * self_b[None, :])
    print("cka:\n", matrix)
    tensors = {"images": images}
    tensors.update(state(a, "vit."))
    tensors.update(state(b, "resnet."))
    write("cka", tensors, {"vit_config": vit_config(), "resnet_config": resnet_config(), "batch_size": batch,
                           "vit_layers": ["patch_embed"] + [f"blocks.{i}" for i in range(len(a.blocks))],
                           "resnet_layers": ["stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0"],
                           "cka": matrix.tolist()})


# --- 3. Fourier heat-map cells ----------------------------------------------------------------------
#
# Yin et al. (2019): U(u, v) is the real H x W image with ||U||_2 = 1 whose 2-D DFT is supported on the
# frequencies (u, v) and (-u, -v) (equal weights, so U is real); image i, channel c becomes
# clip(x + r_ic * v * U(u, v), 0, 1) with r_ic = +-1 at random. The signs are drawn here and committed,
# so both sides perturb identically; the test compares the basis images, the perturbed images, the
# logits and the error rate of a handful of cells (labels: the model's clean predictions, so the
# error is the fraction of decisions the noise changes).

CELLS = [(0, 0), (1, 2), (-3, 5), (0, -8), (-8, 3), (7, 7)]
NORM = 3.0


def fourier_basis(u, v, h, w):
    spectrum = torch.zeros(h, w, dtype=torch.complex128)
    spectrum[u % h, v % w] = 1
    spectrum[(-u) % h, (-v) % w] = 1
    b = torch.fft.ifft2(spectrum)
    assert b.imag.abs().max() < 1e-12
    b = b.real
    return b / b.norm()


def fourier():
    model = vit(seed=3).double()
    images = pixels(6, seed=13)
    with torch.no_grad():
        clean = model(standardise(images).double())
    labels = clean.argmax(-1)
    g = torch.Generator().manual_seed(14)
    tensors = {"images": images, "labels": labels.to(torch.int64), **state(model, "model.")}
    cells = []
    for idx, (u, v) in enumerate(CELLS):
        basis = fourier_basis(u, v, IMAGE, IMAGE)
        signs = torch.where(torch.rand(images.shape[0], 3, generator=g) < 0.5, -1.0, 1.0).double()
        noisy = (images.double() + NORM * signs[:, None, None, :] * basis[None, :, :, None]).clamp(0, 1)
        with torch.no_grad():
            logits = model(standardise(noisy))
        top2 = logits.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
        assert margin > 1e-3, f"cell {(u, v)}: a decision too close to call ({margin})"
        error = (logits.argmax(-1) != labels).double().mean().item()
        print(f"fourier cell {(u, v)}: error {error}, smallest top-2 margin {margin:.4f}")
        tensors[f"cell{idx}.signs"] = signs.float()
        tensors[f"cell{idx}.basis"] = basis.float()
        tensors[f"cell{idx}.perturbed"] = noisy.float()
        tensors[f"cell{idx}.logits"] = logits.float()
        cells.append({"u": u, "v": v, "error": error, "smallest_margin": margin})
    write("fourier", tensors, {"config": vit_config(), "norm": NORM, "cells": cells})


# --- 4. Shape bias from fixed predictions -------------------------------------------------------------
#
# Geirhos et al. (2019): on cue-conflict images, shape bias = shape decisions / (shape + texture
# decisions); per class, over the images whose shape is that class. Images whose shape and texture are
# the same category are left out upstream (Geirhos et al. exclude them), so none are drawn here.
# For ImageNet-1k models, the 1000 probabilities become 16 category scores by averaging the
# probabilities of each category's ImageNet indices (rgeirhos/texture-vs-shape,
# code/helper/human_categories.py, HumanCategories.<category>_indices, aggregation np.mean), and the
# decision is the best category.

CATEGORIES = sorted(["knife", "keyboard", "elephant", "bicycle", "airplane", "clock", "oven", "chair", "bear",
                     "boat", "cat", "bottle", "truck", "car", "bird", "dog"])
INDICES = {
    "airplane": [404],
    "bear": [294, 295, 296, 297],
    "bicycle": [444, 671],
    "bird": [8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 24, 80, 81, 82, 83, 87, 88, 89, 90, 91, 92, 93,
             94, 95, 96, 98, 99, 100, 127, 128, 129, 130, 131, 132, 133, 135, 136, 137, 138, 139, 140, 141, 142,
             143, 144, 145],
    "boat": [472, 554, 625, 814, 914],
    "bottle": [440, 720, 737, 898, 899, 901, 907],
    "car": [436, 511, 817],
    "cat": [281, 282, 283, 284, 285, 286],
    "chair": [423, 559, 765, 857],
    "clock": [409, 530, 892],
    "dog": list(range(152, 192)) + list(range(193, 204)) + list(range(205, 227)) + list(range(228, 242))
           + list(range(243, 251)) + list(range(252, 258)) + [259, 261, 262, 263, 265, 266, 267, 268],
    "elephant": [385, 386],
    "keyboard": [508, 878],
    "knife": [499],
    "oven": [766],
    "truck": [555, 569, 656, 675, 717, 734, 864, 867],
}


def bias_counts(decisions, shapes, textures, classes):
    rows = []
    for c in list(range(classes)) + [None]:
        idx = [i for i in range(len(decisions)) if c is None or shapes[i] == c]
        shape = sum(decisions[i] == shapes[i] for i in idx)
        texture = sum(decisions[i] == textures[i] for i in idx)
        rows.append({"images": len(idx), "shape": shape, "texture": texture, "other": len(idx) - shape - texture,
                     "shape_bias": shape / (shape + texture) if shape + texture else None})
    return rows[:-1], rows[-1]


def draw_conflicts(n, classes, g):
    shapes, textures = [], []
    for _ in range(n):
        s = int(torch.randint(classes, (1,), generator=g))
        t = int(torch.randint(classes - 1, (1,), generator=g))
        shapes.append(s)
        textures.append(t if t < s else t + 1)
    return shapes, textures


def shape_bias():
    g = torch.Generator().manual_seed(15)
    # (a) Decisions given directly (a 10-class model such as one trained on ShapeTex).
    classes = 10
    shapes, textures = draw_conflicts(120, classes, g)
    decisions = []
    for s, t in zip(shapes, textures):
        r = float(torch.rand(1, generator=g))
        decisions.append(s if r < 0.4 else t if r < 0.7 else int(torch.randint(classes, (1,), generator=g)))
    per_class, overall = bias_counts(decisions, shapes, textures, classes)
    # (b) ImageNet-1k probabilities mapped to the 16 categories.
    n = 16
    shapes16, textures16 = draw_conflicts(n, 16, g)
    logits = torch.randn(n, 1000, generator=g, dtype=torch.float64)
    for i in range(n):
        # Push each image towards its shape or texture category (or neither) through a few of its indices.
        r = float(torch.rand(1, generator=g))
        target = shapes16[i] if r < 0.45 else textures16[i] if r < 0.8 else None
        if target is not None:
            idx = INDICES[CATEGORIES[target]]
            logits[i, idx[: max(1, len(idx) // 3)]] += 6.0
    probs = torch.softmax(logits, -1).float()  # float32, as a model hands them over
    p = probs.double()
    scores = torch.stack([p[:, INDICES[c]].mean(-1) for c in CATEGORIES], dim=-1)  # [n, 16]
    top2 = scores.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-6, "a category decision too close to call"
    decisions16 = scores.argmax(-1).tolist()
    per_class16, overall16 = bias_counts(decisions16, shapes16, textures16, 16)
    print(f"shape bias: 10-class {overall['shape_bias']:.4f}, 16-category {overall16['shape_bias']:.4f}")
    write("shape-bias", {"probabilities": probs},
          {"direct": {"classes": classes, "shapes": shapes, "textures": textures, "decisions": decisions,
                      "per_class": per_class, "overall": overall},
           "imagenet16": {"categories": CATEGORIES, "shapes": shapes16, "textures": textures16,
                          "scores": scores.tolist(), "decisions": decisions16,
                          "per_class": per_class16, "overall": overall16}})


QUANTITIES = {"attention-distance": attention_distance, "cka": cka, "fourier": fourier, "shape-bias": shape_bias}

if __name__ == "__main__":
    for name in sys.argv[1:] or QUANTITIES:
        QUANTITIES[name]()
