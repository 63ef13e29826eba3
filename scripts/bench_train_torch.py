"""Throughput of the PyTorch MicroAUNet on the CPU, the baseline the C core is compared against.

Training: AdamW (lr 1e-3, wd 1e-2), bce_dice_loss, random inputs and random binary
targets (content does not change the cost), --warmup untimed steps then --steps timed steps.
Inference: eval mode, no_grad, batch 1, --infer-runs timed frames after a few warm-up frames.
With --weights W the model is W's (its channels and trained weights, as the C core loads
them), inference runs first on exactly those weights and training then on a fresh copy.
Prints one JSON line, e.g.
    /usr/bin/python3 scripts/bench_train_torch.py --channels w8 --threads 1
    /usr/bin/python3 scripts/bench_train_torch.py --weights weights/microaunet-kvasir.safetensors
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_microaunet import CHANNELS, MicroAUNet, bce_dice_loss, count_params  # noqa: E402
import st_write  # noqa: E402


def parse_channels(text):
    """'w8' / 'microaunet-w8' / 'microaunet' or an explicit list '4,8,12,16,24,32'."""
    for arch, c in CHANNELS.items():
        if text in (arch, arch.split("-")[-1]):
            return arch, c
    c = [int(v) for v in text.split(",")]
    for arch, known in CHANNELS.items():
        if c == known:
            return arch, c
    return "microaunet-custom", c


def load_model(path):
    """MicroAUNet with the weights of a safetensors file the C core wrote (or loads)."""
    tensors, meta = st_write.load(path)
    if not meta.get("architecture", "").startswith("microaunet") or "channels" not in meta:
        sys.exit(f"{path}: not a MicroAUNet weights file (architecture {meta.get('architecture')!r})")
    arch, c = parse_channels(",".join(str(v) for v in json.loads(meta["channels"])))
    model = MicroAUNet(c)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"{path}: not a MicroAUNet of channels {c}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return arch, c, model


def bench_train(model, batch, size, warmup, steps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    x = torch.randn(batch, 3, size, size)
    t = (torch.rand(batch, 1, size, size) > 0.5).float()
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = bce_dice_loss(model(x), t)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def bench_infer(model, size, warmup, runs):
    x = torch.randn(1, 3, size, size)
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        t0 = time.perf_counter()
        for _ in range(runs):
            model(x)
    return 1000.0 * (time.perf_counter() - t0) / runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="4,8,12,16,24,32",
                    help="comma list, or a variant name: microaunet, w8")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--infer-runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", help="a MicroAUNet safetensors file (instead of --channels' random weights)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.weights:
        arch, c, model = load_model(args.weights)
        ms = bench_infer(model, args.size, 3, args.infer_runs)
        img_s = bench_train(load_model(args.weights)[2], args.batch, args.size, args.warmup, args.steps)
    else:
        arch, c = parse_channels(args.channels)
        model = MicroAUNet(c)
        img_s = bench_train(model, args.batch, args.size, args.warmup, args.steps)
        ms = bench_infer(model, args.size, 3, args.infer_runs)
    print(json.dumps({
        "impl": "pytorch", "arch": arch, "channels": c, "weights": args.weights, "params": count_params(model),
        "batch": args.batch, "size": args.size, "steps": args.steps,
        "img_per_s": round(img_s, 3), "infer_ms_per_frame": round(ms, 3),
        "threads": args.threads, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
