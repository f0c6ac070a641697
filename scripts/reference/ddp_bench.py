"""PyTorch DistributedDataParallel (gloo) on the models of the distributed benchmark
(docs/PERFORMANCE.md, "Data-parallel training"): resnet_nano and vit_nano as Patchwork builds
them, trained with SGD (lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4) on a global batch of
64 random 32x32 images, 10 classes.

    python ddp_bench.py MODEL RANKS THREADS STEPS

RANKS processes (gloo, on this machine) x THREADS threads each; RANKS=1 trains without DDP.
Prints images per second over STEPS timed steps after 3 warm-up steps (rank 0's clock; the
ranks are in step at every allreduce).
"""
import os
import sys
import time

import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def build(name):
    if name == "vit_nano":
        return timm.models.vision_transformer.VisionTransformer(
            img_size=32, patch_size=4, embed_dim=128, depth=6, num_heads=4, mlp_ratio=3, num_classes=10)
    if name == "resnet_nano":
        # timm's BasicBlock stages [1, 1, 1, 1], 32-64-128-256 wide, behind Patchwork's
        # small_input_stem (one 3x3 stride-1 conv of 32 channels, no max-pool).
        def block(inplanes, planes, stride):
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            return timm.models.resnet.BasicBlock(inplanes, planes, stride=stride, downsample=downsample)
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            block(32, 32, 1), block(32, 64, 2), block(64, 128, 2), block(128, 256, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))
    raise SystemExit(f"unknown model {name}")


def worker(rank, ranks, name, threads, steps, out):
    torch.set_num_threads(threads)
    if ranks > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=ranks)
    torch.manual_seed(0)
    model = build(name).train()
    if ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    local = 64 // ranks
    g = torch.Generator().manual_seed(rank)
    images = torch.randn(local, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (local,), generator=g)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        opt.step()

    for _ in range(3):
        step()
    if ranks > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if ranks > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        out.put(64 * steps / seconds)
    if ranks > 1:
        dist.destroy_process_group()


def main():
    name, ranks, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, ranks, name, threads, steps, out)) for r in range(ranks)]
    for p in procs:
        p.start()
    rate = out.get()
    for p in procs:
        p.join()
    print(f"{name} torch ranks={ranks} threads={threads}: {rate:.1f} img/s")


if __name__ == "__main__":
    main()
