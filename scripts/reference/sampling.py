"""Reference values for joining/splitting, padding, roll, flip, indexing,
resize (F.interpolate) and grid_sample.

Feature maps are written channels-last: NCHW tensors are permuted to NHWC
before writing; grids stay [B, Ho, Wo, 2]. For resize and grid_sample the
extra outputs are PyTorch's gradients of sum(out * w) with respect to the
input (and the grid), w being the last input.

Run from this folder: python3 sampling.py
"""
import torch
import torch.nn.functional as F
from common import case, randn, save, nchw_to_nhwc

cases = []

# --- concat / stack / split ---
a = randn(2, 3, 4, seed=1)
b = randn(2, 1, 4, seed=2)
c = randn(2, 2, 4, seed=3)
cases.append(case("concat_axis1", "concat", [a, b, c], torch.cat([a, b, c], dim=1), axis=1))
cases.append(case("concat_axis_neg1", "concat", [a, randn(2, 3, 2, seed=4)], torch.cat([a, randn(2, 3, 2, seed=4)], dim=-1), axis=-1))
cases.append(case("concat_axis0", "concat", [a, randn(1, 3, 4, seed=5)], torch.cat([a, randn(1, 3, 4, seed=5)], dim=0), axis=0))
p, q = randn(3, 4, seed=6), randn(3, 4, seed=7)
for axis in [0, 1, 2, -1]:
    cases.append(case(f"stack_axis{axis}", "stack", [p, q, p], torch.stack([p, q, p], dim=axis), axis=axis))
s = randn(2, 6, 3, seed=8)
cases.append(case("split_sizes_axis1", "split", [s], list(torch.split(s, [1, 3, 2], dim=1)), sizes=[1, 3, 2], axis=1))
cases.append(case("split_sizes_axis_neg1", "split", [s], list(torch.split(s, [2, 1], dim=-1)), sizes=[2, 1], axis=-1))
cases.append(case("split_count_axis1", "split_count", [s], list(torch.chunk(s, 3, dim=1)), count=3, axis=1))
cases.append(case("split_count_axis0", "split_count", [s], list(torch.chunk(s, 2, dim=0)), count=2, axis=0))

# --- pad / roll / flip ---
x = randn(2, 3, 4, seed=9)


def torch_pad(t, widths, value):
    flat = []
    for before, after in reversed(widths):
        flat += [before, after]
    return F.pad(t, flat, value=value)


for name, widths, value in [
    ("pad_grow", [[0, 0], [1, 2], [2, 1]], 0.0),
    ("pad_value", [[1, 0], [0, 0], [0, 3]], -2.5),
    ("pad_negative_mixed", [[1, -1], [-1, 0], [0, 2]], 1.5),
    ("pad_crop", [[0, 0], [-1, -1], [-2, -1]], 0.0),
]:
    cases.append(case(name, "pad", [x], torch_pad(x, widths, value), widths=widths, value=value))
for name, shifts, axes in [
    ("roll_axis0", [1], [0]),
    ("roll_two_axes_negative", [-2, 3], [1, 2]),
    ("roll_large_shift_neg_axis", [5], [-1]),
    ("roll_negative_large", [-7], [1]),
    ("roll_three_axes", [1, -1, 2], [0, 1, 2]),
]:
    cases.append(case(name, "roll", [x], torch.roll(x, shifts=shifts, dims=axes), shifts=shifts, axes=axes))
for axes in [[0], [1, 2], [-1], [0, 1, 2]]:
    tag = "_".join(str(v) for v in axes)
    cases.append(case(f"flip_{tag}", "flip", [x], torch.flip(x, dims=axes), axes=axes))

# --- index_select / gather ---
t = randn(5, 3, 4, seed=10)
for axis, idx in [(0, [4, 0, 0, 2]), (1, [2, 1]), (-1, [3, 3, 0, 1, 2])]:
    cases.append(case(f"index_select_axis{axis}", "index_select", [t],
                      torch.index_select(t, axis, torch.tensor(idx)), axis=axis, indices=idx))
# Relative-position bias: table [(2M-1)^2, heads] indexed by a flattened [M^2 * M^2] index.
M = 3
table = randn((2 * M - 1) ** 2, 2, seed=11)
coords = torch.stack(torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")).flatten(1)
rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (M - 1)
rel_index = (rel[..., 0] * (2 * M - 1) + rel[..., 1]).flatten().tolist()
cases.append(case("index_select_relative_position", "index_select", [table],
                  table[torch.tensor(rel_index)], axis=0, indices=rel_index))
g = torch.Generator().manual_seed(12)
gx = randn(3, 4, 5, seed=13)
for axis, ishape in [(0, (2, 4, 5)), (1, (3, 6, 5)), (2, (2, 3, 7)), (-1, (3, 4, 2)), (1, (2, 2, 3))]:
    n = gx.shape[axis]
    index = torch.randint(0, n, ishape, generator=g)
    cases.append(case(f"gather_axis{axis}_{'x'.join(map(str, ishape))}", "gather", [gx, index.float()],
                      torch.gather(gx, axis, index), axis=axis))


# --- resize (F.interpolate) ---
def resize_case(name, x_nchw, size, mode, align=None, antialias=False, seed=0):
    xg = x_nchw.clone().requires_grad_(True)
    kwargs = {} if align is None else {"align_corners": align}
    out = F.interpolate(xg, size=size, mode=mode, antialias=antialias, **kwargs)
    w = randn(*out.shape, seed=seed)
    (out * w).sum().backward()
    cases.append(case(name, "resize", [nchw_to_nhwc(x_nchw), nchw_to_nhwc(w)],
                      [nchw_to_nhwc(out), nchw_to_nhwc(xg.grad)],
                      size=list(size), mode=mode, alignCorners=bool(align), antialias=antialias))


img = randn(2, 2, 6, 7, seed=20)
sizes = {"up": (9, 11), "down": (4, 3), "mixed": (5, 12), "one": (1, 3), "same_h": (6, 4)}
for tag, size in sizes.items():
    resize_case(f"resize_nearest_{tag}", img, size, "nearest", seed=21)
for mode in ["bilinear", "bicubic"]:
    for align in [False, True]:
        for tag, size in sizes.items():
            resize_case(f"resize_{mode}_{tag}_align{int(align)}", img, size, mode, align, seed=22)
# Antialiased (timm resamples position embeddings with it). PyTorch 2.x's NCHW float antialias
# kernel is wrong when the output width is 1 (channels-last and float64 agree with each other,
# not with it), so those sizes are left out.
for mode in ["bilinear", "bicubic"]:
    for align in [False, True]:
        for tag, size in {"down": (4, 3), "down_strong": (2, 3), "up": (9, 11), "mixed": (3, 12)}.items():
            resize_case(f"resize_{mode}_aa_{tag}_align{int(align)}", img, size, mode, align, antialias=True, seed=23)
wide = randn(1, 17, 3, 4, seed=24)  # more channels than one SIMD vector
resize_case("resize_bicubic_wide_channels", wide, (5, 7), "bicubic", False, seed=25)
resize_case("resize_bilinear_wide_channels_down", wide, (2, 3), "bilinear", True, seed=26)


# --- grid_sample (bilinear, zeros) ---
def grid_case(name, x_nchw, grid, align, seed):
    xg = x_nchw.clone().requires_grad_(True)
    gg = grid.clone().requires_grad_(True)
    out = F.grid_sample(xg, gg, mode="bilinear", padding_mode="zeros", align_corners=align)
    w = randn(*out.shape, seed=seed)
    (out * w).sum().backward()
    cases.append(case(name, "grid_sample", [nchw_to_nhwc(x_nchw), grid, nchw_to_nhwc(w)],
                      [nchw_to_nhwc(out), nchw_to_nhwc(xg.grad), gg.grad], alignCorners=align))


gimg = randn(2, 3, 5, 6, seed=30)
inside = torch.rand(2, 4, 5, 2, generator=torch.Generator().manual_seed(31)) * 1.8 - 0.9
outside = torch.rand(2, 4, 5, 2, generator=torch.Generator().manual_seed(32)) * 3.2 - 1.6  # many points past ±1
for align in [False, True]:
    grid_case(f"grid_sample_inside_align{int(align)}", gimg, inside, align, seed=33)
    grid_case(f"grid_sample_outside_align{int(align)}", gimg, outside, align, seed=34)
wide_img = randn(1, 20, 4, 5, seed=35)
wide_grid = torch.rand(1, 3, 3, 2, generator=torch.Generator().manual_seed(36)) * 2.4 - 1.2
grid_case("grid_sample_wide_channels", wide_img, wide_grid, False, seed=37)
grid_case("grid_sample_wide_channels_align1", wide_img, wide_grid, True, seed=37)


def compact(c):
    """Nine significant digits round-trip float32 exactly and keep the file small."""
    for group in ("inputs", "outputs"):
        for t in c[group]:
            t["data"] = [float(f"{v:.9g}") for v in t["data"]]
    return c


save("sampling", [compact(c) for c in cases])
