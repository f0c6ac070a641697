#!/usr/bin/env python3
"""Writes Sources/PatchworkModels/PretrainedConfigTable.swift and Sources/PatchworkData/ImageNetClassTable.swift.

The pretrained configurations are the references' own evaluation settings, per published checkpoint:
- for every variant timm names, every tag of timm 1.0.31's `default_cfgs` (timm.models.get_pretrained_cfg),
  with the label set from timm.data.infer_imagenet_subset;
- for the families timm does not carry, the authors' evaluation transforms, written out below with where each
  value comes from.
The ImageNet-1k class names and WordNet ids are timm's (timm.data.ImageNetInfo).

Run:  /path/to/venv/bin/python scripts/reference/pretrained_configs.py   (needs timm==1.0.31)
The variant names come from `patchwork models --json` (pass its output file as the first argument).
"""
import json
import sys
from pathlib import Path

import timm
from timm.data import ImageNetInfo, infer_imagenet_subset
from timm.models import get_pretrained_cfg
from timm.models._registry import _model_default_cfgs

ROOT = Path(__file__).resolve().parents[2]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def deit_eval(source, download):
    """DeiT's eval transform (datasets.build_transform), which PVT, P2T, CeiT and CMT train and evaluate with:
    Resize(int(256 / 224 * 224), bicubic), CenterCrop(224), ImageNet mean/std."""
    return dict(input_size=[224, 224], interpolation="bicubic", crop_pct=0.875, crop_mode="center",
                mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, label_set="imagenet-1k",
                channel_order="rgb", source=source, download=download)


AUTHORS = {}
for size in ["tiny", "small", "medium", "large"]:
    AUTHORS[f"pvt_{size}"] = ("in1k", deit_eval(
        "PVT (whai362/PVT, classification/): DeiT's build_transform, eval crop 224/256",
        f"github.com/whai362/PVT, classification README: pvt_{size}.pth"))
for size in ["tiny", "small", "base", "medium", "large"]:
    AUTHORS[f"p2t_{size}"] = ("in1k", deit_eval(
        "P2T (yuhuan-wu/P2T, classification/): DeiT's build_transform, eval crop 224/256",
        f"github.com/yuhuan-wu/P2T, README: p2t_{size}.pth"))
for size in ["tiny", "small", "base"]:
    AUTHORS[f"ceit_{size}"] = ("in1k", deit_eval(
        "CeiT (coeusguo/ceit): DeiT's build_transform, eval crop 224/256",
        f"github.com/coeusguo/ceit, README: ceit_{size}.pth"))
for size, short in [("ti", "tiny"), ("xs", "xs"), ("s", "small"), ("b", "base")]:
    AUTHORS[f"cmt_{size}"] = ("in1k", deit_eval(
        "CMT (huawei-noah/Efficient-AI-Backbones, cmt_pytorch/): DeiT's build_transform, eval crop 224/256",
        f"github.com/huawei-noah/Efficient-AI-Backbones, cmt_pytorch README: CMT-{size.upper()}"))
for size in ["tiny", "small", "base"]:
    AUTHORS[f"dat_{size}"] = ("in1k", dict(
        input_size=[224, 224], interpolation="bicubic", crop_pct=0.875, crop_mode="center",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, label_set="imagenet-1k", channel_order="rgb",
        source="DAT (LeapLabTHU/DAT, data/build.py): TEST.CROP, Resize(int(256 / 224 * 224), bicubic), CenterCrop(224)",
        download=f"github.com/LeapLabTHU/DAT, README: dat_{size}_in1k_224.pth"))
for name, hub in [("cvt_13", "microsoft/cvt-13"), ("cvt_21", "microsoft/cvt-21")]:
    AUTHORS[name] = ("in1k", dict(
        input_size=[224, 224], interpolation="bicubic", crop_pct=0.875, crop_mode="center",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, label_set="imagenet-1k", channel_order="rgb",
        source=f"Hugging Face {hub} preprocessor_config.json (ConvNextImageProcessor: shortest edge 224 / crop_pct "
               "0.875, resample 3 = bicubic, centre crop)",
        hf_hub_id=hub, download=f"huggingface.co/{hub}"))
AUTHORS["cvt_w24"] = ("in22k_ft_in1k", dict(
    input_size=[384, 384], interpolation="bicubic", crop_pct=1.0, crop_mode="squash",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, label_set="imagenet-1k", channel_order="rgb",
    source="Hugging Face microsoft/cvt-w24-384-22k preprocessor_config.json (ConvNextImageProcessor: at 384 and "
           "above it resizes to 384 x 384 without cropping)",
    hf_hub_id="microsoft/cvt-w24-384-22k", download="huggingface.co/microsoft/cvt-w24-384-22k"))
for gf in ["1gf", "4gf", "18gf", "36gf"]:
    AUTHORS[f"vitc_{gf}"] = ("in1k", dict(
        input_size=[224, 224], interpolation="bilinear", crop_pct=0.875, crop_mode="center",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, label_set="imagenet-1k", channel_order="bgr",
        source="pycls (facebookresearch/pycls, datasets/imagenet.py): OpenCV reads BGR; shorter side to 256 with "
               "cv2.INTER_LINEAR, CenterCrop(224), mean/std in BGR order. Patchwork resizes with PIL's bilinear "
               "filter, which differs from OpenCV's (no antialiasing) by a few 8-bit steps",
        download="pycls model zoo (ViT_C_1GF ... ViT_C_36GF configs)"))


def timm_entries(arch):
    default = _model_default_cfgs.get(arch)
    if default is None:
        return []
    out = []
    for i, tag in enumerate(default.tags):
        cfg = get_pretrained_cfg(f"{arch}.{tag}").to_dict()
        entry = dict(
            input_size=list(cfg["input_size"][1:]), interpolation=cfg["interpolation"], crop_pct=cfg["crop_pct"],
            crop_mode=cfg.get("crop_mode", "center"), mean=list(cfg["mean"]), std=list(cfg["std"]),
            num_classes=cfg["num_classes"], label_set=infer_imagenet_subset(cfg) or "", channel_order="rgb",
            source=f"timm {timm.__version__} default_cfgs",
        )
        if cfg.get("test_input_size"):
            entry["test_input_size"] = list(cfg["test_input_size"][1:])
        if cfg.get("test_crop_pct"):
            entry["test_crop_pct"] = cfg["test_crop_pct"]
        if cfg.get("hf_hub_id"):
            entry["hf_hub_id"] = cfg["hf_hub_id"]
            entry["download"] = f"huggingface.co/{cfg['hf_hub_id']} (model.safetensors)"
        elif cfg.get("url"):
            entry["download"] = cfg["url"]
        if tag == "untrained":
            entry["download"] = ""
        out.append(dict(architecture=arch, tag=tag, default=(i == 0), **entry))
    return out


def main():
    variants = [v["name"] for v in json.load(open(sys.argv[1]))]
    table = []
    for arch in variants:
        entries = timm_entries(arch) if arch in timm.list_models() else []
        if not entries and arch in AUTHORS:
            tag, cfg = AUTHORS[arch]
            entries = [dict(architecture=arch, tag=tag, default=True, **cfg)]
        table.extend(entries)
    for e in table:
        assert len(e["mean"]) == 3 and len(e["std"]) == 3, e
    text = json.dumps(table, indent=None, separators=(",", ":"), sort_keys=True)
    # One configuration per line keeps diffs readable.
    text = text.replace("},{", "},\n{")
    swift = (
        "// Generated by scripts/reference/pretrained_configs.py from timm "
        f"{timm.__version__}'s default_cfgs and the authors' evaluation transforms. Do not edit.\n\n"
        "let pretrainedConfigTable = #\"\"\"\n" + text + "\n\"\"\"#\n")
    (ROOT / "Sources/PatchworkModels/PretrainedConfigTable.swift").write_text(swift)

    info = ImageNetInfo("imagenet-1k")
    ids = info.label_names()
    descriptions = [info.index_to_description(i) for i in range(len(ids))]
    assert len(ids) == 1000 and all("\n" not in d and "\t" not in d for d in descriptions)
    rows = "\n".join(f"{w}\t{d}" for w, d in zip(ids, descriptions))
    swift = (
        "// Generated by scripts/reference/pretrained_configs.py from timm "
        f"{timm.__version__}'s ImageNetInfo(\"imagenet-1k\"). Do not edit.\n\n"
        "/// ImageNet-1k's classes in index order, one per line: WordNet id, a tab, the class's names.\n"
        "let imageNet1kClassTable = #\"\"\"\n" + rows + "\n\"\"\"#\n")
    (ROOT / "Sources/PatchworkData/ImageNetClassTable.swift").write_text(swift)
    print(f"{len(table)} pretrained configurations for {len({e['architecture'] for e in table})} variants; "
          f"{len(ids)} ImageNet classes")


if __name__ == "__main__":
    main()
