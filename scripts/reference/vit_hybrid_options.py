"""Extra vit_hybrid cases in the parity-fixture format, from a live timm 1.0.31.

The committed fixture (vit_hybrid-a) covers one backbone: stem "same" with
StdConv2dSame on a 32x32 input. These cases cover the other ResNetV2 options
that ResNetV2.swift implements: odd input sizes, patch_size 2, stems "",
"fixed", "deep_same" and "tiered" (StdConv2d with symmetric padding),
output_stride 8 (dilated stages) and avg_down (with AvgPool2dSame in a dilated
stage). Weights are redrawn as the fixtures' README describes.

They are written outside the repository (they are not committed fixtures):

    pip install timm==1.0.31
    python3 scripts/reference/vit_hybrid_options.py /tmp/vit_hybrid_options
    for f in /tmp/vit_hybrid_options/*.json; do .build/release/patchwork parity $f; done
"""
import json, math, os, sys, torch, timm
from functools import partial
from timm.models.vision_transformer import VisionTransformer
from timm.models.resnetv2 import ResNetV2
from timm.layers import StdConv2dSame, StdConv2d, HybridEmbed
from safetensors.torch import save_file
torch.manual_seed(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else '/tmp/vit_hybrid_options'
os.makedirs(OUT, exist_ok=True)

def case(name, img, patch=1, stem_type='same', same=True, layers=(1, 1), channels=(128, 128), output_stride=32,
         avg_down=False, stem_chs=32, eps=1e-8):
    conv = partial(StdConv2dSame if same else StdConv2d, eps=eps)
    bb_kwargs = dict(layers=list(layers), channels=list(channels), stem_chs=stem_chs, num_classes=0, global_pool='',
                     in_chans=3, preact=False, stem_type=stem_type, output_stride=output_stride, avg_down=avg_down)
    bb = ResNetV2(conv_layer=conv, **bb_kwargs)
    vit_kwargs = dict(img_size=img, patch_size=patch, num_classes=10, embed_dim=48, depth=2, num_heads=3)
    m = VisionTransformer(embed_layer=partial(HybridEmbed, backbone=bb), **vit_kwargs)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.ndim >= 2 and 'pos_embed' not in n and 'cls_token' not in n:
                p.normal_(0, 1 / math.sqrt(p[0].numel()))
            elif n.endswith('bias'):
                p.normal_(0, 0.1)
            elif p.ndim == 1:
                p.uniform_(0.6, 1.4)
            else:
                p.normal_(0, 0.5)
    x = torch.randn(2, 3, img, img)
    labels = torch.tensor([1, 7])
    m.eval()
    with torch.no_grad():
        le = m(x)
    m.train()
    lt = m(x)
    loss = torch.nn.functional.cross_entropy(lt, labels)
    loss.backward()
    t = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}
    t['fixture.input'] = x
    t['fixture.labels'] = labels
    t['fixture.logits_eval'] = le
    t['fixture.logits_train'] = lt.detach()
    t['fixture.loss_train'] = loss.detach()
    for n, p in m.named_parameters():
        t['fixture.grad.' + n] = p.grad.contiguous()
    save_file(t, f'{OUT}/{name}.safetensors')
    bb_cfg = dict(bb_kwargs, conv_layer={"$type": "partial", "name": "timm.layers.std_conv." + ("StdConv2dSame" if same else "StdConv2d"), "kwargs": {"eps": eps}})
    cfg = dict(vit_kwargs, embed_layer={"$type": "partial", "name": "timm.layers.hybrid_embed.HybridEmbed",
                                        "kwargs": {"backbone": {"$type": "instance", "name": "timm.models.resnetv2.ResNetV2", "kwargs": bb_cfg}}})
    spec = dict(case=name, family="vit_hybrid", config=cfg, input_shape=[2, 3, img, img], num_classes=10,
                num_params=sum(p.numel() for p in m.parameters()),
                tolerance=dict(logits_rtol=1e-4, logits_atol=1e-4, loss_atol=1e-5, grad_rel_l2=1e-3))
    json.dump(spec, open(f'{OUT}/{name}.json', 'w'), indent=1)
    print(name, tuple(m.patch_embed.grid_size), spec['num_params'])

case('odd33', 33)
case('odd29-p2', 29, patch=2, layers=(1, 2), channels=(128, 128))
case('plain', 30, stem_type='', same=False)
case('fixed', 32, stem_type='fixed', same=False)
case('deep-same', 31, stem_type='deep_same', stem_chs=64)
case('tiered', 32, stem_type="tiered", stem_chs=256, same=False)
case('os8', 29, layers=(1, 1, 1), channels=(128, 128, 128), output_stride=8)
case('avgdown', 27, layers=(1, 1, 1), channels=(128, 128, 128), avg_down=True)
case('avgdown-os8', 25, layers=(1, 1, 2), channels=(128, 128, 128), avg_down=True, output_stride=8)
