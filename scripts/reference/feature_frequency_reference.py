"""Reference values for Patchwork's feature-frequency analysis, from the definition in
Park & Kim 2022 ("How do vision transformers work?", Fig. 2 and 8), computed with PyTorch
forward hooks on timm models. Not a translation of the Swift code.

Writes Tests/PatchworkTests/Fixtures/analysis-reference/feature-frequency/:
  models.safetensors  the three models' weights (timm key names, prefixed "vit.", "vit_dwconv.",
                      "resnet.") and the batch "fixture.pixels" [B, H, W, C] (channels-last,
                      in [0, 1]; the models see (pixels - 0.5) * 4, Patchwork's pipeline)
  reference.json      their configs and, per model and resolution (native, 4), the block
                      curves and the per-sub-layer curves before/after and the change at pi

Definitions (Park & Kim's notebook, with the diagonal taken to k = n/2 so that the last point
is frequency pi; their shifted half-diagonal stops at k = n/2 - 1, asserted equal below):
  curve(map [B, C, h, w]) = mean over B, C of log(|fft2(map)| + 1e-6) at (k, k), k = 0..n/2,
                            minus its value at k = 0
  a token output [B, 1 + n*n, D] drops its class token and is laid on its n x n grid
  with a resolution r, a map of side a*r is average-pooled in a x a windows first; a map
  smaller than r, or not a multiple of it, is left out
  a residual sub-layer's change = curve(stream after)[-1] - curve(stream before)[-1]:
  ViT attention: before x, after x + ls1(attn(norm1(x))); MLP: before that, after the block
  output; ResNet block: its input and output.

Run: /work/venv/bin/python scripts/reference/feature_frequency_reference.py (torch 2.x, timm 1.0.x, CPU)
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from safetensors.torch import save_file
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "PatchworkTests", "Fixtures", "analysis-reference", "feature-frequency")
RESOLUTION = 4

torch.manual_seed(0)


def curve(map_bchw):
    """Relative log amplitude along the diagonal, k = 0..n/2, in float64."""
    amplitude = torch.fft.fft2(map_bchw.double()).abs()
    log_amp = (amplitude + 1e-6).log().mean(dim=(0, 1))
    h, w = log_amp.shape
    n = min(h, w)
    diag = torch.stack([log_amp[(k * h // n) % h, (k * w // n) % w] for k in range(n // 2 + 1)])
    # Park & Kim's reading: roll by n/2, take the diagonal from the centre: k = 0..n/2 - 1.
    if h == w and n >= 2:
        rolled = torch.roll(log_amp, shifts=(h // 2, w // 2), dims=(0, 1)).diag()[h // 2:]
        assert torch.allclose(rolled, diag[: n // 2]), "the shifted half-diagonal is our curve without pi"
    return (diag - diag[0]).tolist()


def as_map(t, prefix):
    """[B, C, h, w] from a CNN map, or from tokens [B, prefix + n*n, D]."""
    if t.dim() == 4:
        return t
    b, n, d = t.shape
    side = int(round((n - prefix) ** 0.5))
    return t[:, prefix:].reshape(b, side, side, d).permute(0, 3, 1, 2)


def at_resolution(m, r):
    """The map pooled to r x r, or None when it cannot be without upsampling."""
    if r is None:
        return m
    h, w = m.shape[-2:]
    if h < r or w < r or h % r or w % r:
        return None
    return F.avg_pool2d(m, (h // r, w // r)) if h != r else m


def measure(named_outputs, branches, prefix, r):
    layers, out_branches, excluded_layers, excluded_branches = {}, {}, [], []
    for name, t in named_outputs:
        m = at_resolution(as_map(t, prefix), r)
        if m is None:
            excluded_layers.append(name)
            continue
        layers[name] = curve(m)
    for name, kind, before, after in branches:
        mb, ma = at_resolution(as_map(before, prefix), r), at_resolution(as_map(after, prefix), r)
        if mb is None or ma is None:
            excluded_branches.append(name)
            continue
        cb, ca = curve(mb), curve(ma)
        # A 1 x 1 map has no frequency but 0: no value at pi, so no change (null).
        change = ca[-1] - cb[-1] if len(ca) > 1 and len(cb) > 1 else None
        out_branches[name] = {"kind": kind, "before": cb, "after": ca, "change": change}
    return {"layers": layers, "branches": out_branches, "excluded_layers": excluded_layers, "excluded_branches": excluded_branches}


def randomize(model, scale):
    """Weights far from their init (so attention is not uniform and BN not the identity)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


class DepthwiseMixer(nn.Module):
    """Patchwork's vit_dwconv control: a depthwise k x k conv over the patch-token grid, zero for the class token."""

    def __init__(self, dim, kernel, grid, prefix):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=True)
        self.grid, self.prefix = grid, prefix

    def forward(self, x, **kwargs):  # timm passes attn_mask, is_causal
        b, n, d = x.shape
        patches = x[:, self.prefix:].reshape(b, self.grid, self.grid, d).permute(0, 3, 1, 2)
        mixed = self.conv(patches).permute(0, 2, 3, 1).reshape(b, self.grid * self.grid, d)
        return torch.cat([torch.zeros(b, self.prefix, d), mixed], dim=1)


def vit_streams(model, images_nchw):
    """Block outputs (after the embedding and after each block) and the streams around every sub-layer."""
    records = {}
    hooks = [model.norm_pre.register_forward_hook(lambda m, i, o: records.__setitem__("patch_embed", o))]
    for i, blk in enumerate(model.blocks):
        hooks.append(blk.register_forward_hook(lambda m, i_, o, i=i: records.__setitem__(f"blocks.{i}", (i_[0], o))))
        hooks.append(blk.ls1.register_forward_hook(lambda m, i_, o, i=i: records.__setitem__(f"blocks.{i}.branch1", o)))
    with torch.no_grad():
        model(images_nchw)
    for h in hooks:
        h.remove()
    outputs = [("patch_embed", records["patch_embed"])]
    branches = []
    for i, blk in enumerate(model.blocks):
        x, out = records[f"blocks.{i}"]
        mid = x + records[f"blocks.{i}.branch1"]  # drop_path is the identity in eval
        mixer_name, mixer_kind = ("mixer", "depthwise-conv") if isinstance(blk.attn, DepthwiseMixer) else ("attn", "attention")
        branches.append((f"blocks.{i}.{mixer_name}", mixer_kind, x, mid))
        branches.append((f"blocks.{i}.mlp", "mlp", mid, out))
        outputs.append((f"blocks.{i}", out))
    return outputs, branches


def resnet_streams(model, images_nchw):
    records = {}
    hooks = [model.maxpool.register_forward_hook(lambda m, i, o: records.__setitem__("stem", o))]
    names = []
    for stage in ["layer1", "layer2", "layer3", "layer4"]:
        for j, blk in enumerate(getattr(model, stage)):
            name = f"{stage}.{j}"
            names.append(name)
            hooks.append(blk.register_forward_hook(lambda m, i_, o, name=name: records.__setitem__(name, (i_[0], o))))
    with torch.no_grad():
        model(images_nchw)
    for h in hooks:
        h.remove()
    outputs = [("stem", records["stem"])] + [(n, records[n][1]) for n in names]
    branches = [(n, "conv", records[n][0], records[n][1]) for n in names]
    return outputs, branches


def main():
    os.makedirs(OUT, exist_ok=True)
    pixels = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    images = (pixels - 0.5) * 4  # Patchwork's own input pipeline (ModelInput.patchwork)

    vit_config = {"img_size": 32, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0, "num_classes": 10}
    vit = VisionTransformer(**vit_config).eval()
    randomize(vit, 0.3)

    dw_config = dict(vit_config, global_pool="avg", token_mixer="depthwise_conv", token_mixer_kernel=3)
    dw = VisionTransformer(**{k: v for k, v in dw_config.items() if not k.startswith("token_mixer")}).eval()
    for blk in dw.blocks:
        blk.attn = DepthwiseMixer(16, 3, 8, 1)
    randomize(dw, 0.3)

    resnet_config = {"block": {"$type": "callable", "name": "timm.models.resnet.BasicBlock"}, "layers": [1, 1, 1, 1], "channels": [4, 8, 16, 32],
                     "stem_type": "deep", "stem_width": 8, "num_classes": 10}
    resnet = ResNet(block=BasicBlock, layers=[1, 1, 1, 1], channels=(4, 8, 16, 32), stem_type="deep", stem_width=8,
                    num_classes=10).eval()
    randomize(resnet, 0.3)

    results = {}
    for key, model, streams, prefix in [("vit", vit, vit_streams, 1), ("vit_dwconv", dw, vit_streams, 1),
                                        ("resnet", resnet, resnet_streams, 0)]:
        outputs, branches = streams(model, images)
        results[key] = {"native": measure(outputs, branches, prefix, None),
                        f"resolution_{RESOLUTION}": measure(outputs, branches, prefix, RESOLUTION)}

    tensors = {"fixture.pixels": pixels.permute(0, 2, 3, 1).contiguous()}
    for key, model in [("vit", vit), ("vit_dwconv", dw), ("resnet", resnet)]:
        for name, t in model.state_dict().items():
            t = t.detach().contiguous()
            # num_batches_tracked stays int64, as in a timm checkpoint.
            tensors[f"{key}.{name.replace('.attn.conv.', '.mixer.conv.')}"] = t if name.endswith("num_batches_tracked") else t.float()
    save_file(tensors, os.path.join(OUT, "models.safetensors"))
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"generator": f"torch {torch.__version__}, timm {timm.__version__}", "resolution": RESOLUTION,
                   "configs": {"vit": vit_config, "vit_dwconv": dw_config, "resnet": resnet_config},
                   "results": results}, f, indent=1)
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
