"""Reference outputs of torchvision's deterministic image functions.

Writes Tests/PatchworkTests/Fixtures/ops/transforms.json (see common.py).
Images are [C, H, W] in torchvision and [H, W, C] in the JSON. The random
transforms of Patchwork draw from their own generator, so they are checked
against these functions with the drawn parameters fixed: colour adjustments
(ColorJitter's four functions), resized_crop (RandomResizedCrop), resize by
the shorter edge, center_crop (with odd margins and with padding), pad
(RandomCrop's padding modes) and normalize.
"""
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

from common import case, save


def image(c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(c, h, w, generator=g)
    if c == 3:
        img[:, 0, 0] = 0.5          # grey pixel (max == min)
        img[:, 0, 1] = torch.tensor([0.7, 0.7, 0.2])  # ties of max between R and G
        img[:, 0, 2] = torch.tensor([0.1, 0.6, 0.6])  # ties of max between G and B
        img[:, 1, 0] = torch.tensor([0.9, 0.3, 0.9])  # ties of max between R and B
        img[:, 1, 1] = 0.0
        img[:, 1, 2] = 1.0
    return img


def hwc(t):
    return t.permute(1, 2, 0).contiguous()


cases = []


def add(name, op, img, out, **args):
    cases.append(case(name, op, [hwc(img)], [hwc(out)], **args))


rgb = image(3, 6, 5, seed=1)
grey = image(1, 4, 5, seed=2)
for f in [0.6, 1.3]:
    add(f"brightness_{f}", "brightness", rgb, F.adjust_brightness(rgb, f), factor=f)
for f in [0.5, 1.7]:
    add(f"contrast_{f}", "contrast", rgb, F.adjust_contrast(rgb, f), factor=f)
add("contrast_grey", "contrast", grey, F.adjust_contrast(grey, 1.4), factor=1.4)
add("brightness_grey", "brightness", grey, F.adjust_brightness(grey, 1.5), factor=1.5)
for f in [0.3, 1.8]:
    add(f"saturation_{f}", "saturation", rgb, F.adjust_saturation(rgb, f), factor=f)
for f in [0.2, -0.35, 0.5, -0.5, 0.0]:
    add(f"hue_{f}", "hue", rgb, F.adjust_hue(rgb, f), factor=f)

big = image(3, 12, 10, seed=3)
for (top, left, h, w, size) in [(1, 2, 7, 6, [5, 5]), (0, 0, 12, 10, [4, 7]), (3, 1, 4, 5, [9, 11]), (2, 2, 5, 5, [5, 5])]:
    out = F.resized_crop(big, top, left, h, w, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    add(f"resized_crop_{top}_{left}_{h}_{w}_to_{size[0]}x{size[1]}", "resized_crop", big, out,
        top=top, left=left, height=h, width=w, size=size)

tall = image(3, 12, 9, seed=4)
for s in [6, 4, 13]:
    add(f"resize_shorter_{s}", "resize_shorter", tall, F.resize(tall, [s], antialias=True), size=s)
    wide = tall.transpose(1, 2).contiguous()
    add(f"resize_shorter_{s}_wide", "resize_shorter", wide, F.resize(wide, [s], antialias=True), size=s)

for size in [[5, 4], [6, 6], [12, 9], [8, 7], [15, 12], [14, 9]]:
    add(f"center_crop_{size[0]}x{size[1]}", "center_crop", tall, F.center_crop(tall, size), size=size)
small = image(3, 5, 4, seed=5)
add("center_crop_pad_8x7", "center_crop", small, F.center_crop(small, [8, 7]), size=[8, 7])

for mode in ["constant", "reflect", "symmetric", "edge"]:
    for p in [1, 3]:
        out = F.pad(small, [p, p, p, p], fill=0.25 if mode == "constant" else 0, padding_mode=mode)
        add(f"pad_{mode}_{p}", "pad", small, out, padding=p, mode=mode, fill=0.25)

mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
add("normalize", "normalize", rgb, F.normalize(rgb, mean, std), mean=mean, std=std)
add("hflip", "hflip", rgb, F.hflip(rgb))

save("transforms", cases)
