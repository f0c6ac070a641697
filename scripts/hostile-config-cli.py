#!/usr/bin/env python3
"""Hostile configs and options against the release `patchwork` binary (issue 19, item 2).

Mutates every parity fixture's config (zero, negative and huge sizes, 1e9 depths, heads that do
not divide the width, short lists, input_shape and num_classes that do not fit the model) and
runs `patchwork parity` on each; then runs every command with out-of-range option values. Each
case runs in a child process with a time limit and a memory watch, and is classed as

  crash   ended by a signal (a trap, SIGSEGV, SIGFPE, an abort)
  hang    killed at the time limit, or for passing the memory limit while it ran
  silent  exit 0, or a parity comparison (FAIL ... logits/loss/gradient): the bad value was accepted
  vague   an error exit whose message does not name the field or option
  clean   an error exit whose message names the field or option

Usage: scripts/hostile-config-cli.py [--binary .build/release/patchwork] [--fixtures DIR]
       [--timeout 60] [--memory-mb 3000] [--list]
Exits non-zero unless every case is clean.
"""
import argparse
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HUGE = 2 ** 62
# Scalar size fields of the families' configs (the references' argument names).
SCALARS = {"img_size", "image_size", "patch_size", "embed_dim", "depth", "num_heads", "n_heads", "hidden_d", "n_layers",
           "mlp_d", "key_dim", "window_size", "in_chans", "num_channels", "stem_channel", "fc_dim", "dim_stem", "qk_ratio",
           "leff_local_size", "num_encoder_blocks", "stem_chs", "dim_head", "stem_width", "expansion", "mlp_ratio"}
# Per-stage list fields.
LISTS = {"depths", "layers", "embed_dims", "num_heads", "hidden_sizes", "channels", "dims", "heads", "embed_dim", "depth",
         "sr_ratios", "num_attention_heads", "patch_sizes", "window_sizes", "mlp_ratios", "patch_stride"}
# Values the references accept, left out so that every case is a value that must be refused:
# 0 blocks (a model or stage without blocks builds in timm and Hugging Face).
DEPTHS = {"depth", "depths", "layers", "n_layers"}
# Lists whose length sets the stage count (a shorter one is a model with fewer stages).
STAGE_COUNT = {("cvt", "depth"), ("vit_hybrid", "layers")}
# Fields the fixture's model does not use: DAT's sr_ratios (only for its "P" stages, the
# fixture has none); ConViT's embed_dim is per head, so any num_heads divides the width.
UNUSED = {("dat", "sr_ratios")}


def config_mutations(family, config):
    """(description, field name the error must give, mutated config) for every size field at any depth."""
    out = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = path + [key]
            if (family, key) in UNUSED:
                continue
            if key in SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool):
                for bad in [0, -1, HUGE, 1e9]:
                    if not (bad == 0 and key in DEPTHS):
                        out.append((here, bad, key))
            elif key in LISTS and isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
                for bad in [0, -1, 1e9]:
                    if not (bad == 0 and key in DEPTHS) and bad != value[0]:
                        out.append((here, [bad] + value[1:], key))
                if (family, key) not in STAGE_COUNT:
                    out.append((here, value[:-1] if len(value) > 1 else [], key))
            elif isinstance(value, dict):
                walk(value, here)

    walk(config, [])
    cases = []
    for path, bad, field in out:
        mutated = copy.deepcopy(config)
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        cases.append((".".join(path) + " = " + json.dumps(bad)[:40], field, mutated))
    return cases


def parity_cases(fixtures):
    cases = []
    for name in sorted(os.listdir(fixtures)):
        if not name.endswith(".json"):
            continue
        case = json.load(open(os.path.join(fixtures, name)))
        family, shape = case["family"], case["input_shape"]
        for description, field, config in config_mutations(family, case["config"]):
            c = dict(case, config=config)
            cases.append((f"{family}: {description}", field, name, c))
        # Heads that do not divide the width (5 heads for width 48 and the like).
        for key in ["num_heads", "n_heads"]:
            if isinstance(case["config"].get(key), int) and family != "convit":
                c = copy.deepcopy(case)
                c["config"][key] = 5 if case["config"][key] != 5 else 7
                cases.append((f"{family}: {key} = {c['config'][key]}", key, name, c))
        # Input shapes that do not fit the model, and no classes.
        for bad in [[0] + shape[1:], [shape[0], shape[1] + 1] + shape[2:], shape[:3], [shape[0], shape[1], 2 * shape[2] + 32, 2 * shape[3] + 32]]:
            if bad[2:] == [2 * shape[2] + 32, 2 * shape[3] + 32] and family in {"resnet", "cvt", "pvt_v2"}:
                continue  # these run at any side: a larger input is valid for them
            cases.append((f"{family}: input_shape = {bad}", "input_shape", name, dict(case, input_shape=bad)))
        c = copy.deepcopy(case)
        for key in ["num_classes", "num_labels"]:
            if key in c["config"]:
                c["config"][key] = 0
        cases.append((f"{family}: num_classes = 0 (config)", "num_classes", name, c))
        cases.append((f"{family}: num_classes = 0 (case and config)", "num_classes", name, dict(c, num_classes=0)))
    return cases


def cli_cases(root):
    out = os.path.join(root, "out")
    a_file = os.path.join(root, "a-file")
    open(a_file, "w").write("x")
    train = ["train", "--model", "resnet_nano", "--data", "shapetex:train=64,test=32", "--out", out]
    analysis = ["--model", "resnet_nano", "--weights", "w.safetensors", "--out", out]
    cases = []
    for option, values in [("--epochs", ["0", "-1", "1000000000"]), ("--batch-size", ["0", "-5", "100000000"]),
                           ("--lr", ["-1", "0", "nan", "inf", "1e39"]), ("--label-smoothing", ["2", "1", "-0.1", "nan"]),
                           ("--warmup-epochs", ["nan", "-1", "inf"]), ("--clip-norm", ["nan", "0", "-1", "inf"]),
                           ("--mixup", ["-1", "nan", "inf"]), ("--cutmix", ["-1", "nan"]), ("--weight-decay", ["-1", "nan"]),
                           ("--img-size", ["0", "-1", "1000000"]), ("--optimizer", ["lion"]), ("--augment", ["rotate"]),
                           ("--model", ["resnet_9000"])]:
        for v in values:
            args = [a for a in train]
            if option == "--model":
                args[2] = v
                cases.append((["train"] + args[1:], option))
            else:
                cases.append((args + [f"{option}={v}"], option))
    cases += [
        (["train", "--model", "vit_nano", "--data", "shapetex:train=64,test=32", "--out", out, "--img-size=64"], "--img-size"),
        (["eval", "--model", "swin_nano", "--weights", "w", "--data", "shapetex", "--img-size=48"], "--img-size"),
        (train[:-1] + [a_file], "--out"), (train[:-1] + [a_file + "/sub"], "--out"), (train[:-1] + [""], "--out"),
        (["eval", "--model", "resnet_nano", "--weights", "w", "--data", "shapetex", "--batch-size=0"], "--batch-size"),
        (["eval", "--model", "resnet_nano", "--weights", "w", "--data", "shapetex", "--img-size=-3"], "--img-size"),
        (["eval", "--model", "no_such_model", "--weights", "w", "--data", "shapetex"], "--model"),
        (["predict", "--model", "no_such_model", "--weights", "w", "a.png"], "--model"),
        (["analyze", "shape-bias"] + analysis + ["--samples=0"], "--samples"),
        (["analyze", "shape-bias"] + analysis + ["--batch-size=0"], "--batch-size"),
        (["analyze", "shape-bias", "--model", "resnet_nano", "--weights", "w", "--out", a_file], "--out"),
        (["analyze", "fourier-heatmap"] + analysis + ["--norm=nan"], "--norm"),
        (["analyze", "fourier-heatmap"] + analysis + ["--norm=-1"], "--norm"),
        (["analyze", "frequency-noise"] + analysis + ["--bands=0"], "--bands"),
        (["analyze", "frequency-noise"] + analysis + ["--cutoffs=1,nan"], "--cutoffs"),
        (["analyze", "corruptions"] + analysis + ["--only=smoke"], "--only"),
        (["analyze", "adversarial"] + analysis + ["--epsilons=nan"], "--epsilons"),
        (["analyze", "adversarial"] + analysis + ["--steps=0"], "--steps"),
        (["analyze", "adversarial"] + analysis + ["--step-size=inf"], "--step-size"),
        (["analyze", "attention-maps"] + analysis + ["--scale=1000000"], "--scale"),
        (["analyze", "cka"] + analysis + ["--model-b", "vit_nano", "--weights-b", "w", "--cka-batch=1"], "--cka-batch"),
        (["analyze", "landscape"] + analysis + ["--points=0"], "--points"),
        (["analyze", "landscape"] + analysis + ["--range=nan"], "--range"),
        (["analyze", "hessian"] + analysis + ["--iterations=0"], "--iterations"),
        (["analyze", "cost", "--out", out, "--seconds=nan"], "--seconds"),
        (["analyze", "cost", "--out", out, "--batch=0"], "--batch"),
        (["analyze", "cost", "--out", out, "--classes=-1"], "--classes"),
        (["shapetex", "--out", out, "--count=-1"], "--count"), (["shapetex", "--out", out, "--size=100000"], "--size"),
        (["shapetex", "--out", a_file], "--out"), (["demo", "--out", a_file], "--out"),
        (["report", root, "--out", root], "--out"), (["bench", "gemm", "--seconds=nan"], "--seconds"),
        (["bench", "--json", root], "--json"),
    ]
    return cases


def run(binary, args, timeout, memory_mb, cwd):
    """(outcome, exit code or signal, output) of one child run."""
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no")
    process = subprocess.Popen([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                               start_new_session=True)
    started, killed = time.time(), None
    while True:
        try:
            output = process.communicate(timeout=0.2)[0]
            break
        except subprocess.TimeoutExpired:
            pass
        try:
            rss_kb = int(next(l for l in open(f"/proc/{process.pid}/status") if l.startswith("VmRSS:")).split()[1])
        except (OSError, StopIteration, ValueError):
            rss_kb = 0
        if rss_kb > memory_mb * 1024:
            killed = f"memory above {memory_mb} MB"
        elif time.time() - started > timeout:
            killed = f"running after {timeout} s"
        if killed:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0]
            break
    output = output.decode("utf-8", "replace")
    return killed, process.returncode, output


def classify(killed, code, output, field):
    if killed:
        return "hang"
    if code < 0:
        return "crash"
    # A parity result line ("FAIL case  logits 1.2e-03 ...") or a weights mismatch: the config was accepted.
    accepted = re.search(r"^(PASS|FAIL) \S+  logits ", output, re.M) or any(
        w in output for w in ["unused keys", "missing keys", "shape mismatch", "parameter count"])
    if code == 0 or accepted:
        return "silent"
    return "clean" if field in output else "vague"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=".build/release/patchwork")
    parser.add_argument("--fixtures", default="Tests/PatchworkTests/Fixtures/parity")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--memory-mb", type=int, default=3000)
    parser.add_argument("--list", action="store_true", help="print every case with its outcome")
    options = parser.parse_args()
    binary = os.path.abspath(options.binary)
    root = tempfile.mkdtemp(prefix="patchwork-hostile-")
    counts = {}
    try:
        for kind in ["config", "cli"]:
            tally = {k: 0 for k in ["crash", "hang", "silent", "vague", "clean"]}
            if kind == "config":
                cases = parity_cases(options.fixtures)
            else:
                cases = cli_cases(root)
            for i, entry in enumerate(cases):
                if kind == "config":
                    description, field, fixture, case = entry
                    path = os.path.join(root, f"case{i}.json")
                    json.dump(case, open(path, "w"))
                    weights = os.path.join(os.path.abspath(options.fixtures), fixture.replace(".json", ".safetensors"))
                    os.symlink(weights, path.replace(".json", ".safetensors"))
                    args = ["parity", path]
                else:
                    args, field = entry
                    description = " ".join(args)
                killed, code, output = run(binary, args, options.timeout, options.memory_mb, root)
                outcome = classify(killed, code, output, field)
                tally[outcome] += 1
                if options.list or outcome != "clean":
                    last = output.strip().splitlines()[-1] if output.strip() else ""
                    print(f"{outcome:6} {kind} {description}  [{killed or code}] {last[:200]}")
            counts[kind] = (len(cases), tally)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for kind, (n, tally) in counts.items():
        print(f"{kind}: {n} cases: " + ", ".join(f"{k} {v}" for k, v in tally.items()))
    bad = sum(t[k] for _, t in counts.values() for k in ["crash", "hang", "silent", "vague"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
