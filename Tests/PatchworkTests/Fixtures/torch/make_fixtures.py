"""Makes the torch checkpoint fixtures beside this script with the real torch.save.

Run from anywhere: python make_fixtures.py (torch 2.x, safetensors, numpy).
Each checkpoint NAME.pth has NAME.expected.safetensors beside it: the state dict
Patchwork must read from it, as contiguous float32 computed by torch.
hostile-*.pth are damaged on purpose; vitc-a.pth holds the weights of the parity
case ../parity/vitc-a saved the way its authors' repository (pycls) saves.
"""
import argparse
import io
import os
import zipfile
from collections import OrderedDict

import numpy
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
# The file the malicious fixture's payload would create if anything executed it.
PWNED = "/tmp/patchwork-torch-fixture-pwned"


def path(name):
    return os.path.join(HERE, name)


def expect(name, state_dict):
    save_file({k: v.detach().float().contiguous() for k, v in state_dict.items()}, path(name + ".expected.safetensors"))


def small_model_state(seed):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        net[1].running_mean.copy_(torch.randn(4, generator=g))
        net[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
        net[1].num_batches_tracked.fill_(7)
    return net, net.state_dict()


def dtypes_state():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(4, 6, generator=g)
    shared = torch.arange(10, dtype=torch.float32) * 0.25
    sd = OrderedDict()
    sd["f32"] = base.clone()
    sd["f16"] = (torch.randn(3, 5, generator=g) * 100).half()
    sd["bf16"] = torch.randn(2, 3, generator=g).bfloat16()
    sd["f64"] = torch.randn(5, generator=g, dtype=torch.float64) * 1e3
    sd["i64"] = torch.tensor([-(2**20), -1, 0, 1, 2**23], dtype=torch.int64)
    sd["i32"] = torch.tensor([[-7, 8], [9, -10]], dtype=torch.int32)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    # Two tensors on one storage, the second with a storage offset.
    sd["shared_a"] = shared[:4].view(2, 2)
    sd["shared_b"] = shared[4:]
    # Non-contiguous views: a transposed matrix, every second column of an offset slice.
    sd["transposed"] = base.t()
    sd["strided"] = base[1:, ::2]
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    return sd


class Payload:
    """Would create PWNED if unpickling executed anything."""

    def __reduce__(self):
        return (os.system, ("touch " + PWNED,))


class OpenPayload:
    def __reduce__(self):
        import builtins
        return (builtins.open, (PWNED, "w"))


def write_zip(name, entries):
    """A stored zip archive with these (name, bytes) entries, as torch.save lays them out."""
    with zipfile.ZipFile(path(name), "w", compression=zipfile.ZIP_STORED) as z:
        for entry, data in entries:
            z.writestr(entry, data)


def zip_entries(name):
    with zipfile.ZipFile(path(name)) as z:
        return [(info.filename, z.read(info.filename)) for info in z.infolist()]


def main():
    sd = dtypes_state()
    torch.save(sd, path("dtypes.pth"))
    expect("dtypes", sd)

    net, model_sd = small_model_state(2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 3, 3)).sum().backward()
    opt.step()  # momentum buffers in the optimizer state
    model_sd = net.state_dict()
    args = argparse.Namespace(lr=0.1, arch="tiny", epochs=3)
    torch.save({"model": model_sd, "optimizer": opt.state_dict(), "epoch": 3, "args": args,
                "best_acc": numpy.float64(0.5)}, path("training.pth"))
    expect("training", model_sd)

    # DataParallel's wrapper puts module. before every key.
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in model_sd.items()), "epoch": 1},
               path("dataparallel.pth"))

    _, ema_sd = small_model_state(3)
    torch.save({"model": model_sd, "model_ema": ema_sd, "epoch": 3}, path("ema.pth"))
    expect("ema", ema_sd)

    torch.save(model_sd, path("legacy.pth"), _use_new_zipfile_serialization=False)

    torch.save({"model": model_sd, "payload": Payload(), "open": OpenPayload()}, path("malicious.pth"))

    # Hostile files, from training.pth's entries.
    entries = zip_entries("training.pth")
    pkl = next(e for e in entries if e[0].endswith("/data.pkl"))
    with open(path("training.pth"), "rb") as f:
        whole = f.read()
    with open(path("hostile-truncated.pth"), "wb") as f:
        f.write(whole[: len(whole) * 2 // 3])
    write_zip("hostile-no-data-pkl.pth", [e for e in entries if not e[0].endswith("/data.pkl")])
    write_zip("hostile-short-storage.pth", [(n, d[: len(d) // 2] if "/data/0" in n else d) for n, d in entries])
    write_zip("hostile-unknown-storage.pth",
              [(n, d.replace(b"torch\nFloatStorage\n", b"torch\nComplexFloatStorage\n") if n == pkl[0] else d)
               for n, d in entries])
    # Protocol 0 text opcodes (here PUT, "p") are outside the subset torch writes.
    prefix = pkl[0][: -len("data.pkl")]
    write_zip("hostile-opcode.pth", [(prefix + "data.pkl", b"(dp0\nVa\np1\nI1\ns."), (prefix + "byteorder", b"little")])

    # The parity case vitc-a (pycls's ViT-C), saved as pycls's checkpoint.py saves: epoch, model_state,
    # optimizer_state, cfg (a YAML dump).
    parity = load_file(path("../parity/vitc-a.safetensors"))
    weights = OrderedDict((k, v) for k, v in sorted(parity.items()) if not k.startswith("fixture."))
    params = [torch.nn.Parameter(v.clone()) for k, v in weights.items() if v.is_floating_point()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-5, nesterov=True)
    torch.save({"epoch": 99, "model_state": weights, "optimizer_state": opt.state_dict(),
                "cfg": "MODEL:\n  TYPE: vit\nOPTIM:\n  BASE_LR: 0.1\n"}, path("vitc-a.pth"))


if __name__ == "__main__":
    main()
