"""Reference values for conv2d (all paths), its gradients, and 2-D pooling.

Inputs are drawn NCHW / OIHW, run through torch, and written NHWC / OHWI
(common.py). Case kinds:
  conv2d       inputs [x, w, (bias)]            outputs [y]
  conv2d_grad  inputs [x, w, (bias), v]         outputs [y, dx, dw, (dbias)] of sum(y * v)
  max_pool2d / avg_pool2d / adaptive_avg_pool2d         inputs [x]     outputs [y]
  *_grad       inputs [x, v]                    outputs [y, dx] of sum(y * v)
"""
import torch
import torch.nn.functional as F
from common import case, nchw_to_nhwc, oihw_to_ohwi, randn, save

cases = []
seed = [100]


def next_seed():
    seed[0] += 1
    return seed[0]


def conv_case(name, b, c, h, w, o, k, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
              bias=True, grad=False):
    kh, kw = k
    x = randn(b, c, h, w, seed=next_seed())
    wt = randn(o, c // groups, kh, kw, seed=next_seed(), scale=0.5)
    bs = randn(o, seed=next_seed()) if bias else None
    args = dict(stride=list(stride), padding=list(padding), dilation=list(dilation), groups=groups)
    if not grad:
        y = F.conv2d(x, wt, bs, stride=stride, padding=padding, dilation=dilation, groups=groups)
        inputs = [nchw_to_nhwc(x), oihw_to_ohwi(wt)] + ([bs] if bias else [])
        cases.append(case(name, "conv2d", inputs, nchw_to_nhwc(y), **args))
        return
    xg = x.clone().requires_grad_()
    wg = wt.clone().requires_grad_()
    bg = bs.clone().requires_grad_() if bias else None
    y = F.conv2d(xg, wg, bg, stride=stride, padding=padding, dilation=dilation, groups=groups)
    v = randn(*y.shape, seed=next_seed())
    (y * v).sum().backward()
    inputs = [nchw_to_nhwc(x), oihw_to_ohwi(wt)] + ([bs] if bias else []) + [nchw_to_nhwc(v)]
    outputs = [nchw_to_nhwc(y), nchw_to_nhwc(xg.grad), oihw_to_ohwi(wg.grad)] + ([bg.grad] if bias else [])
    cases.append(case(name, "conv2d_grad", inputs, outputs, **args))


# Pointwise (one GEMM) and its grouped / strided variants.
conv_case("1x1_bias", 2, 6, 4, 5, 8, (1, 1))
conv_case("1x1_no_bias", 2, 6, 4, 5, 8, (1, 1), bias=False)
conv_case("1x1_groups2", 2, 6, 3, 4, 4, (1, 1), groups=2)
conv_case("1x1_stride2", 1, 5, 5, 6, 3, (1, 1), stride=(2, 2))
conv_case("1x1_padding1", 1, 3, 3, 3, 4, (1, 1), padding=(1, 1))
# General im2col + GEMM.
conv_case("3x3_s1_p1_bias", 2, 5, 7, 6, 7, (3, 3), padding=(1, 1))
conv_case("3x3_s1_p0_no_bias", 2, 5, 6, 7, 4, (3, 3), bias=False)
conv_case("3x3_s2_p1", 2, 4, 9, 8, 6, (3, 3), stride=(2, 2), padding=(1, 1))
conv_case("3x3_s2_p0_no_bias", 1, 4, 8, 9, 5, (3, 3), stride=(2, 2), bias=False)
conv_case("3x3_dilation2_p2", 1, 3, 9, 9, 4, (3, 3), padding=(2, 2), dilation=(2, 2))
conv_case("3x3_dilation_2x1", 1, 3, 8, 7, 4, (3, 3), padding=(1, 0), dilation=(2, 1))
conv_case("3x3_groups2", 2, 6, 6, 5, 4, (3, 3), padding=(1, 1), groups=2)
conv_case("3x3_groups3_s2", 1, 9, 7, 7, 6, (3, 3), stride=(2, 2), padding=(1, 1), groups=3, bias=False)
conv_case("kernel_2x3_s2x1_p1x0", 2, 3, 6, 7, 5, (2, 3), stride=(2, 1), padding=(1, 0))
conv_case("kernel_1x3_p0x1", 1, 4, 5, 6, 3, (1, 3), padding=(0, 1))
conv_case("kernel_3x1_s1x2", 1, 4, 6, 5, 3, (3, 1), stride=(1, 2), bias=False)
conv_case("kernel2_stride3", 1, 3, 8, 8, 4, (2, 2), stride=(3, 3))
conv_case("stem_7x7_s2_p3", 1, 3, 12, 10, 8, (7, 7), stride=(2, 2), padding=(3, 3))
conv_case("kernel_equals_padded_input", 1, 2, 3, 3, 3, (5, 5), padding=(1, 1))
# Depthwise: direct SIMD kernel (C = 20 and 17: one vector plus a tail).
conv_case("depthwise_3x3_p1", 2, 20, 5, 6, 20, (3, 3), padding=(1, 1), groups=20)
conv_case("depthwise_5x5_s2_p2_no_bias", 1, 17, 7, 8, 17, (5, 5), stride=(2, 2), padding=(2, 2), groups=17, bias=False)
conv_case("depthwise_3x3_dilation2", 1, 16, 7, 7, 16, (3, 3), padding=(2, 2), dilation=(2, 2), groups=16)
conv_case("depthwise_7x7_p3", 1, 4, 6, 5, 4, (7, 7), padding=(3, 3), groups=4)
conv_case("depthwise_2x3_s2x1", 1, 5, 6, 6, 5, (2, 3), stride=(2, 1), padding=(1, 1), groups=5)
conv_case("depthwise_multiplier2", 2, 5, 5, 5, 10, (3, 3), padding=(1, 1), groups=5)
conv_case("depthwise_multiplier3_s2_no_bias", 1, 4, 7, 6, 12, (3, 3), stride=(2, 2), groups=4, bias=False)
# Gradients of sum(y * v) for a few of each path.
conv_case("grad_1x1", 2, 6, 3, 4, 5, (1, 1), grad=True)
conv_case("grad_3x3_s2_p1", 2, 4, 7, 6, 5, (3, 3), stride=(2, 2), padding=(1, 1), grad=True)
conv_case("grad_groups2_dilation2", 1, 4, 7, 7, 6, (3, 3), padding=(2, 1), dilation=(2, 2), groups=2, grad=True)
conv_case("grad_kernel_2x3_s2x1_no_bias", 1, 3, 6, 5, 4, (2, 3), stride=(2, 1), padding=(1, 1), bias=False, grad=True)
conv_case("grad_depthwise_3x3_s2", 2, 18, 6, 5, 18, (3, 3), stride=(2, 2), padding=(1, 1), groups=18, grad=True)
conv_case("grad_depthwise_multiplier2", 1, 3, 5, 6, 6, (3, 3), padding=(1, 1), groups=3, grad=True)


def pool_case(name, kind, b, c, h, w, grad=False, ties=False, **args):
    x = randn(b, c, h, w, seed=next_seed())
    if ties:
        x = torch.randint(0, 3, (b, c, h, w), generator=torch.Generator().manual_seed(next_seed())).float()
    if kind == "max_pool2d":
        f = lambda t: F.max_pool2d(t, args["kernel"], args.get("stride"), args.get("padding", 0),
                                   ceil_mode=args.get("ceil_mode", False))
    elif kind == "avg_pool2d":
        f = lambda t: F.avg_pool2d(t, args["kernel"], args.get("stride"), args.get("padding", 0),
                                   ceil_mode=args.get("ceil_mode", False),
                                   count_include_pad=args.get("count_include_pad", True))
    else:
        f = lambda t: F.adaptive_avg_pool2d(t, args["output_size"])
    json_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}
    if not grad:
        cases.append(case(name, kind, [nchw_to_nhwc(x)], nchw_to_nhwc(f(x)), **json_args))
        return
    xg = x.clone().requires_grad_()
    y = f(xg)
    v = randn(*y.shape, seed=next_seed())
    (y * v).sum().backward()
    cases.append(case(name, kind + "_grad", [nchw_to_nhwc(x), nchw_to_nhwc(v)],
                      [nchw_to_nhwc(y), nchw_to_nhwc(xg.grad)], **json_args))


# Max pooling.
pool_case("max_k2", "max_pool2d", 2, 5, 6, 6, kernel=(2, 2))
pool_case("max_k3_s2_p1", "max_pool2d", 2, 17, 7, 8, kernel=(3, 3), stride=(2, 2), padding=(1, 1))
pool_case("max_k3_s2_ceil", "max_pool2d", 1, 4, 8, 8, kernel=(3, 3), stride=(2, 2), ceil_mode=True)
pool_case("max_k3_s2_floor", "max_pool2d", 1, 4, 8, 8, kernel=(3, 3), stride=(2, 2), ceil_mode=False)
pool_case("max_k3_s2_p1_ceil", "max_pool2d", 1, 3, 8, 7, kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)
pool_case("max_k2_s2_p1_ceil_drops_window_in_padding", "max_pool2d", 1, 3, 5, 5, kernel=(2, 2), stride=(2, 2),
          padding=(1, 1), ceil_mode=True)
pool_case("max_overlapping_k3_s1", "max_pool2d", 1, 4, 5, 6, kernel=(3, 3), stride=(1, 1))
pool_case("max_nonsquare", "max_pool2d", 1, 3, 7, 6, kernel=(3, 2), stride=(2, 1), padding=(1, 0))
pool_case("max_grad_overlapping", "max_pool2d", 2, 18, 6, 5, grad=True, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
          ceil_mode=True)
pool_case("max_grad_ties", "max_pool2d", 1, 3, 6, 6, grad=True, ties=True, kernel=(3, 3), stride=(1, 1), padding=(1, 1))
# Average pooling, divisors with and without padding / ceil mode.
pool_case("avg_k2", "avg_pool2d", 2, 5, 6, 6, kernel=(2, 2))
for include in [True, False]:
    tag = "include_pad" if include else "exclude_pad"
    pool_case(f"avg_k3_s2_p1_{tag}", "avg_pool2d", 2, 17, 7, 8, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
              count_include_pad=include)
    pool_case(f"avg_k3_s2_p1_ceil_{tag}", "avg_pool2d", 1, 3, 6, 7, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
              ceil_mode=True, count_include_pad=include)
    pool_case(f"avg_k2_s2_p1_ceil_{tag}", "avg_pool2d", 1, 3, 5, 6, kernel=(2, 2), stride=(2, 2), padding=(1, 1),
              ceil_mode=True, count_include_pad=include)
    pool_case(f"avg_overlapping_k3_s1_p1_{tag}", "avg_pool2d", 1, 4, 5, 5, kernel=(3, 3), stride=(1, 1),
              padding=(1, 1), count_include_pad=include)
pool_case("avg_k3_s2_ceil", "avg_pool2d", 1, 4, 8, 8, kernel=(3, 3), stride=(2, 2), ceil_mode=True)
pool_case("avg_nonsquare", "avg_pool2d", 1, 3, 7, 6, kernel=(3, 2), stride=(2, 1), padding=(1, 1))
pool_case("avg_grad_ceil_exclude_pad", "avg_pool2d", 1, 18, 7, 6, grad=True, kernel=(3, 3), stride=(2, 2),
          padding=(1, 1), ceil_mode=True, count_include_pad=False)
# Adaptive average pooling: sizes that do and do not divide, and upsampling.
for (h, w), (oh, ow) in [((7, 7), (3, 3)), ((5, 5), (2, 2)), ((4, 4), (1, 1)), ((6, 6), (3, 3)),
                         ((3, 4), (5, 6)), ((7, 5), (3, 2))]:
    pool_case(f"adaptive_{h}x{w}_to_{oh}x{ow}", "adaptive_avg_pool2d", 2, 5, h, w, output_size=(oh, ow))
pool_case("adaptive_grad_5x7_to_2x3", "adaptive_avg_pool2d", 1, 17, 5, 7, grad=True, output_size=(2, 3))

save("conv", cases)
