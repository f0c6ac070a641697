"""Reference outputs for Tests/PatchworkTests/PreprocessingTests.swift.

Runs the real PIL / torchvision / timm evaluation transform
(timm.data.create_transform(..., is_training=False), i.e. transforms_imagenet_eval)
on photographs that scikit-image ships, and PIL's Image.resize on small synthetic
images, and writes:

  images/             the input files (copied from skimage/data, or encoded here by PIL)
  cases.json          one entry per (image, configuration); the SHA-256 of each whole image
                      as PIL decodes it (Image.open(p).convert("RGB"))
  eval.safetensors    "<case>.crop": the 8-bit RGB crop before ToTensor (U8, [H, W, 3]);
                      "<case>.tensor": the normalised tensor, channels last (F32, [H, W, 3]),
                      for the cases whose "tensor" flag is set
  resample.json / resample.safetensors   PIL resizes of synthetic L and RGB images

Run from this folder with the reference venv:
  /work/venv/bin/python make_fixtures.py
Versions used are written into cases.json.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import PIL
import PIL.features
import skimage
import timm
import torch
import torchvision
from PIL import Image
from safetensors.numpy import save_file
from timm.data import create_transform

HERE = os.path.dirname(os.path.abspath(__file__))
SKIMAGE_DATA = os.path.join(os.path.dirname(skimage.__file__), "data")
IMAGES = os.path.join(HERE, "images")

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
HALF = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def make_images():
    os.makedirs(IMAGES, exist_ok=True)
    # Files exactly as skimage ships them.
    for name in ["chelsea.png",      # RGB photograph, 451x300
                 "coins.png",        # greyscale photograph, 384x303
                 "horse.png",        # RGBA, 400x328 (alpha dropped by convert("RGB"))
                 "rocket.jpg",       # baseline JPEG, 4:4:4, 640x427
                 "retina.jpg"]:      # baseline JPEG, 4:2:0 chroma (fancy upsampling), 1411x1411
        shutil.copyfile(os.path.join(SKIMAGE_DATA, name), os.path.join(IMAGES, name))
    chelsea = Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB")
    # A palette PNG: the photograph quantised by PIL to 64 colours.
    chelsea.resize((225, 150), Image.BICUBIC).quantize(64).save(os.path.join(IMAGES, "chelsea_palette.png"))
    # A progressive JPEG with 4:2:0 chroma, encoded by PIL at quality 90.
    chelsea.save(os.path.join(IMAGES, "chelsea_progressive.jpg"), quality=90, progressive=True, subsampling=2)
    # A greyscale JPEG, encoded by PIL at quality 90 (a 256x200 window of camera.png).
    camera = Image.open(os.path.join(SKIMAGE_DATA, "camera.png")).convert("L").crop((128, 40, 384, 240))
    camera.save(os.path.join(IMAGES, "camera_grey.jpg"), quality=90)
    # A small CMYK JPEG (the 8-bit decoder refuses CMYK; the test checks it says so).
    chelsea.crop((200, 100, 232, 124)).convert("CMYK").save(os.path.join(IMAGES, "cmyk.jpg"), quality=90)


IMAGE_NAMES = ["chelsea.png", "coins.png", "horse.png", "chelsea_palette.png",
               "rocket.jpg", "retina.jpg", "chelsea_progressive.jpg", "camera_grey.jpg"]

# name: (input (h, w), interpolation, mean/std, crop_pct, crop_mode)
CONFIGS = {
    "bicubic224": ((224, 224), "bicubic", IMAGENET, 0.875, "center"),
    "bicubic96_half": ((96, 96), "bicubic", HALF, 0.9, "center"),
    "bilinear64": ((64, 64), "bilinear", IMAGENET, 0.95, "center"),
    "squash64x96": ((64, 96), "bicubic", IMAGENET, 0.875, "squash"),
    "center80x56": ((80, 56), "bicubic", HALF, 0.875, "center"),
    "border64": ((64, 64), "bilinear", IMAGENET, 1.0, "border"),
    "border_wide48x80": ((48, 80), "bicubic", IMAGENET, 0.9, "border"),
    "lanczos60": ((60, 60), "lanczos", IMAGENET, 0.875, "center"),
    "hamming50": ((50, 50), "hamming", IMAGENET, 0.875, "center"),
    "box40": ((40, 40), "box", IMAGENET, 0.875, "center"),
    "nearest45": ((45, 45), "nearest", IMAGENET, 0.875, "center"),
    "upscale_bicubic320": ((320, 320), "bicubic", IMAGENET, 0.875, "center"),
}
# 224 and 320 are large: only on a few images. Normalised tensors: on chelsea only, at the small sizes.
LARGE = {"bicubic224": ["chelsea.png", "retina.jpg"], "upscale_bicubic320": ["camera_grey.jpg"]}
TENSOR_IMAGES = {"chelsea.png"}


def decoded_digests():
    """SHA-256 of each whole image after Image.open(p).convert("RGB") (rows, RGB interleaved)."""
    return {name: hashlib.sha256(np.asarray(Image.open(os.path.join(IMAGES, name)).convert("RGB"), dtype=np.uint8).tobytes()).hexdigest()
            for name in IMAGE_NAMES}


def eval_cases():
    cases, tensors = [], {}
    for image_name in IMAGE_NAMES:
        img = Image.open(os.path.join(IMAGES, image_name)).convert("RGB")
        for config_name, (size, interpolation, stats, crop_pct, crop_mode) in CONFIGS.items():
            if config_name in LARGE and image_name not in LARGE[config_name]:
                continue
            transform = create_transform(input_size=(3, *size), is_training=False, interpolation=interpolation,
                                         mean=stats["mean"], std=stats["std"], crop_pct=crop_pct, crop_mode=crop_mode)
            steps = transform.transforms
            assert type(steps[-2]).__name__ in ("ToTensor", "MaybeToTensor"), steps
            crop = img
            for step in steps[:-2]:
                crop = step(crop)
            crop = np.asarray(crop, dtype=np.uint8)
            assert crop.shape == (*size, 3), (image_name, config_name, crop.shape)
            key = f"{os.path.splitext(image_name)[0]}.{config_name}"
            tensors[key + ".crop"] = np.ascontiguousarray(crop)
            store_tensor = image_name in TENSOR_IMAGES and config_name not in LARGE
            if store_tensor:
                t = transform(img)
                tensors[key + ".tensor"] = np.ascontiguousarray(t.permute(1, 2, 0).numpy().astype(np.float32))
            cases.append(dict(name=key, image=image_name, input_size=list(size), interpolation=interpolation,
                              mean=list(stats["mean"]), std=list(stats["std"]), crop_pct=crop_pct,
                              crop_mode=crop_mode, tensor=store_tensor, transform=repr(transform)))
    return cases, tensors


RESAMPLE_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                    "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
# (width, height) in -> list of (width, height) out: up, down, odd, one axis only, to one pixel.
RESAMPLE_SIZES = {(7, 5): [(3, 2), (16, 11), (7, 9), (13, 5), (1, 1)],
                  (31, 17): [(10, 6), (9, 17), (64, 40), (30, 18), (5, 33)],
                  (1, 9): [(4, 3), (1, 2)]}


def resample_cases():
    rng = np.random.default_rng(15)
    cases, tensors = [], {}
    for (w, h), outs in RESAMPLE_SIZES.items():
        for mode in ["L", "RGB"]:
            shape = (h, w) if mode == "L" else (h, w, 3)
            # Random values, plus a hard edge of 0 and 255 so the filters' overshoot is clipped.
            values = rng.integers(0, 256, size=shape, dtype=np.uint8)
            values[: h // 2, : (w + 1) // 2] = 255
            values[h // 2:, (w + 1) // 2:] = 0
            source = f"src_{w}x{h}_{mode}"
            tensors[source] = values.reshape(h, w, -1).copy()
            img = Image.fromarray(values, mode)
            for (ow, oh) in outs:
                for filter_name, filt in RESAMPLE_FILTERS.items():
                    out = np.asarray(img.resize((ow, oh), filt)).reshape(oh, ow, -1)
                    key = f"{source}.to_{ow}x{oh}.{filter_name}"
                    tensors[key] = out.copy()
                    cases.append(dict(name=key, source=source, mode=mode, width=ow, height=oh, filter=filter_name))
    return cases, tensors


def main():
    make_images()
    versions = dict(pillow=PIL.__version__, libjpeg_turbo=PIL.features.version("libjpeg_turbo"),
                    timm=timm.__version__, torch=torch.__version__, torchvision=torchvision.__version__,
                    skimage=skimage.__version__)
    cases, tensors = eval_cases()
    save_file(tensors, os.path.join(HERE, "eval.safetensors"))
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(dict(versions=versions, decoded_rgb_sha256=decoded_digests(), cases=cases), f, indent=1)
    cases, tensors = resample_cases()
    save_file(tensors, os.path.join(HERE, "resample.safetensors"))
    with open(os.path.join(HERE, "resample.json"), "w") as f:
        json.dump(dict(versions=versions, cases=cases), f, indent=1)


if __name__ == "__main__":
    main()
