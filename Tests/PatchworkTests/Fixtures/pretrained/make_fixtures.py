#!/usr/bin/env python3
"""Reference predictions of seven timm ImageNet-1k variants on real photographs, for PretrainedPredictionTests.

The weights are not stored: each float tensor of the state dict is a function of its key and shape that the
Swift test computes the same way (`deterministic_weights`; splitmix64 of the key's FNV-1a hash, 8-bit values
times a power of two, so they are exact in float16 and float32). The classifier (the 2-D weight with 1000 rows)
is scaled so the probabilities are far from flat. Integer buffers (relative position indices, batch counts)
keep the values the model builds.

For each variant, each image goes through timm's own eval transform
(`create_transform(**resolve_data_config({}, model=model))`, PIL decoding and resizing) and the model; the
fixture keeps the reference's preprocessed input (as the 8-bit crop, one per distinct transform: exact, and the
normalised tensor follows from it), the top-5 class indices and their probabilities. The weights' gain is He's
unless a variant's features then grow far from 1 (LeViT); the classifier's scale is chosen per variant so the
logits spread by about 2 over the classes. The script checks that the predictions
depend on the image and that no two of the top six probabilities are within 1e-5 (so their order is not noise).

One variant, pvt_v2_b0, is also saved whole with torch.save (float16 storages, which hold these weights exactly),
as `pvt_v2_b0.pth`, so the test loads a real PyTorch checkpoint of a full ImageNet model.

Run from the repository root:  /path/to/venv/bin/python Tests/PatchworkTests/Fixtures/pretrained/make_fixtures.py
(torch 2.15.0, timm 1.0.31, pillow, safetensors).
"""
import json
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.numpy import save_file
from timm.data import create_transform, resolve_data_config

HERE = Path(__file__).resolve().parent
VARIANTS = ["resnet18", "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s", "pvt_v2_b0",
            "convit_tiny", "coatnet_nano_rw_224"]
# Real photographs that scikit-image ships (copied beside the preprocessing fixtures): a colour PNG, a grayscale
# PNG, a JPEG.
PHOTOS = HERE.parent / "preprocess" / "images"
IMAGES = ["chelsea.png", "coins.png", "rocket.jpg"]
MASK64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def splitmix64(x):
    """Vectorised over a uint64 array (numpy wraps uint64 arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def deterministic_weights(key, shape, gain, classifier_scale, classes=1000):
    """Values (k − 128) / 128 · scale with k the top byte of splitmix64(hash(key) + i), i the flat index.
    Weights of two or more dimensions are uniform on ±sqrt(gain / fan-in) rounded to a power of two (gain 6 is
    He's initialisation); the classifier's are multiplied by `classifier_scale`."""
    n = int(np.prod(shape)) if shape else 1
    with np.errstate(over="ignore"):
        k = (splitmix64(np.uint64(fnv1a64(key)) + np.arange(n, dtype=np.uint64)) >> np.uint64(56)).astype(np.float64)
    signed = (k - 128) / 128  # in [-1, 1), steps of 1/128
    if key.endswith("running_var"):
        values = 1 + signed / 2  # in [0.5, 1.5)
    elif key.endswith("running_mean"):
        values = signed / 4
    elif len(shape) == 1 and key.endswith("weight"):
        values = 1 + signed / 4
    elif len(shape) <= 1:
        values = signed / 16
    else:
        fan_in = int(np.prod(shape[1:]))
        scale = 2.0 ** round(np.log2(np.sqrt(gain / fan_in)))
        if len(shape) == 2 and shape[0] == classes:
            scale *= classifier_scale
        values = signed * scale
    return values.reshape(shape).astype(np.float32)


def load_weights(model, gain, classifier_scale):
    state = model.state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.from_numpy(deterministic_weights(key, list(value.shape), gain, classifier_scale))
    model.load_state_dict(state)


def main():
    expected = {}
    tensors = {}
    for arch in VARIANTS:
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        config = resolve_data_config({}, model=model)
        transform = create_transform(**config)
        crop_transform = create_transform(**config)
        crop_transform.transforms = crop_transform.transforms[:-2]  # up to the centre crop: PIL image, 8-bit
        images = [Image.open(PHOTOS / name).convert("RGB") for name in IMAGES]
        x = torch.stack([transform(image) for image in images])
        # The weights' gain: He's, unless the features then grow far from 1 (as in LeViT, whose residual branches
        # add up unnormalised), where float32 rounding would decide near ranks; then smaller gains. The
        # classifier's scale: the power of two that brings the logits' spread over classes near 2.
        for gain in [6, 3, 1.5, 0.75]:
            classifier_scale = 1.0
            for _ in range(2):
                load_weights(model, gain, classifier_scale)
                with torch.no_grad():
                    spread = float(model(x).std(-1).mean())
                classifier_scale *= 2.0 ** round(np.log2(2 / spread))
            if classifier_scale >= 1 / 16:
                break
        load_weights(model, gain, classifier_scale)
        crop_key = f"{config['interpolation']}-{config['crop_pct']}-{config['crop_mode']}-{config['input_size'][1]}"
        rows = []
        with torch.no_grad():
            probabilities = model(x).softmax(-1)
        for name, image, p in zip(IMAGES, images, probabilities):
            tensors[f"{crop_key}/{name}"] = np.asarray(crop_transform(image), dtype=np.uint8)
            top = p.topk(6)
            gaps = (top.values[:-1] - top.values[1:]).tolist()
            assert min(gaps) > 1e-5, f"{arch} {name}: near-tied ranks {top.values.tolist()}"
            rows.append(dict(image=name, top5=top.indices[:5].tolist(), probabilities=top.values[:5].tolist()))
        spread_over_images = float(probabilities.std(0).max())
        assert spread_over_images > 0.01, f"{arch}: the predictions do not depend on the image"
        expected[arch] = dict(gain=gain, classifier_scale=classifier_scale, crop=crop_key,
                              config={k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}, images=rows)
        if arch == "pvt_v2_b0":
            torch.save({"model": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                        "epoch": 299, "note": "deterministic weights, see make_fixtures.py"}, HERE / "pvt_v2_b0.pth")
        print(arch, gain, classifier_scale, crop_key, [(r["image"], r["top5"][:3], [round(q, 4) for q in r["probabilities"][:3]]) for r in rows])
    save_file(tensors, HERE / "crops.safetensors")
    (HERE / "expected.json").write_text(json.dumps(dict(
        torch=torch.__version__, timm=timm.__version__, pillow=Image.__version__, variants=expected), indent=1) + "\n")


if __name__ == "__main__":
    main()
