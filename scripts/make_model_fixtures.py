"""Write the MicroAUNet and MALUNet model fixtures into tests/fixtures/models/ (run from the
repo root):
    /usr/bin/python3 scripts/make_model_fixtures.py

Every file holds the state_dict (F32, state_dict names, without num_batches_tracked) of a
seeded random model, the "input" and the expected "output" logits:
  microaunet_128.safetensors       c=[4,..,32], eval, input (1,3,128,128), plus encoder
                                   features "feat.t1".."feat.t5" (before LSCAB) to localise bugs
  microaunet_256.safetensors       c=[4,..,32], eval, input (1,3,256,256), another seed
  microaunet-w8_128.safetensors    c=[8,..,64], eval, input (1,3,128,128), plus feat.t1..t5
  microaunet_train_128.safetensors c=[4,..,32], TRAIN mode (BN batch statistics), input
                                   (2,3,128,128), binary blob "target", "loss" (shape [1]) of
                                   bce_dice_loss, "output", "grad.<param>" for every parameter,
                                   "after.<bn buffer>" = running stats after that one forward
                                   (momentum 0.1, running_var updated with the unbiased variance).
  malunet_128.safetensors          MALUNet c=[8,..,64], eval, input (1,3,128,128), plus feat.t1..t5
                                   (before SCAB)
  malunet_train_128.safetensors    MALUNet c=[4,8,12,16,24,32] (half width: the same code paths at
                                   a quarter of the bytes), TRAIN mode, input (2,3,128,128), as
                                   microaunet_train_128 (MALUNet has no batch-norm, so no "after.")
Metadata "arch" and "channels" say which model to build.

Why 128 and not 64: t5 is H/32 and LSCAB reflect-pads it by 3; reflect padding needs pad < size
(torch and the C op alike), so the smallest valid input is 128 (t5 = 4x4).

Regenerating gives identical bytes: fixed seeds, one thread, deterministic algorithms, and a
writer that keeps insertion order.
"""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save  # noqa: E402
import torch_malunet  # noqa: E402
import torch_microaunet  # noqa: E402
from torch_microaunet import MicroAUNet, bce_dice_loss  # noqa: E402

CHANNELS = {**torch_microaunet.CHANNELS, **torch_malunet.CHANNELS}
MODELS = {"microaunet": MicroAUNet, "microaunet-w8": MicroAUNet, "malunet": torch_malunet.MALUNet}
MALUNET_HALF = [4, 8, 12, 16, 24, 32]

OUT_DIR = os.path.join("tests", "fixtures", "models")
SMALL = 128  # smallest valid input size, see the docstring


def uniform(gen, shape, lo, hi):
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def randomise(model, gen):
    """Overwrite every parameter and BN buffer with seeded random values, so that each one
    changes the output. Scales are moderate (fan-in normalised weights, affine gains near 1,
    running variances near the true ones) to keep activations O(1)."""
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) / fan_in ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(uniform(gen, mod.bias.shape, -0.2, 0.2))
            elif isinstance(mod, (nn.BatchNorm2d, nn.GroupNorm)):
                mod.weight.copy_(uniform(gen, mod.weight.shape, 0.6, 1.4))
                mod.bias.copy_(uniform(gen, mod.bias.shape, -0.2, 0.2))
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.copy_(uniform(gen, mod.running_mean.shape, -0.2, 0.2))
                    mod.running_var.copy_(uniform(gen, mod.running_var.shape, 0.5, 1.5))
        if hasattr(model, "lscab"):
            model.lscab.alpha.copy_(uniform(gen, (1,), 0.3, 0.9))
            model.lscab.beta.copy_(uniform(gen, (1,), 0.3, 0.9))


def state_tensors(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def blob_target(gen, n, size):
    """One filled ellipse per sample (polyp-like), random centre, radii and orientation."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for i in range(n):
        cy, cx = uniform(gen, (2,), 0.3 * size, 0.7 * size).tolist()
        ry, rx = uniform(gen, (2,), 0.1 * size, 0.3 * size).tolist()
        th = uniform(gen, (1,), 0.0, 3.14159).item()
        c, s = torch.cos(torch.tensor(th)), torch.sin(torch.tensor(th))
        u = (xx - cx) * c + (yy - cy) * s
        v = -(xx - cx) * s + (yy - cy) * c
        out[i, 0] = ((u / rx) ** 2 + (v / ry) ** 2 <= 1).float()
    return out


def metadata(arch, channels, size, **extra):
    md = {"arch": arch, "channels": json.dumps(channels, separators=(",", ":")),
          "input_size": str(size)}
    md.update({k: str(v) for k, v in extra.items()})
    return md


def make_eval(name, arch, size, seed, with_features, channels=None):
    channels = channels or CHANNELS[arch]
    gen = torch.Generator().manual_seed(seed)
    model = MODELS[arch](channels)
    randomise(model, gen)
    model.eval()
    x = torch.randn((1, 3, size, size), generator=gen)
    with torch.no_grad():
        y, ts = model(x, return_features=True)
    tensors = state_tensors(model)
    tensors["input"] = x
    tensors["output"] = y
    if with_features:
        for k, t in enumerate(ts, 1):
            tensors[f"feat.t{k}"] = t
    write(name, tensors, metadata(arch, channels, size, mode="eval"))
    return y


def make_train(name, arch, size, seed, channels=None):
    channels = channels or CHANNELS[arch]
    gen = torch.Generator().manual_seed(seed)
    model = MODELS[arch](channels)
    randomise(model, gen)
    tensors = state_tensors(model)  # the weights before the step
    model.train()
    x = torch.randn((2, 3, size, size), generator=gen)
    target = blob_target(gen, 2, size)
    y = model(x)
    loss = bce_dice_loss(y, target)
    loss.backward()
    tensors["input"] = x
    tensors["target"] = target
    tensors["output"] = y
    tensors["loss"] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        assert p.grad is not None, k  # every parameter must take part
        tensors["grad." + k] = p.grad
    for k, b in model.named_buffers():
        if not k.endswith("num_batches_tracked"):
            tensors["after." + k] = b
    bn = {"bn_momentum": 0.1} if arch.startswith("microaunet") else {}  # MALUNet has no batch-norm
    write(name, tensors, metadata(arch, channels, size, mode="train", batch=2, **bn))
    return y, loss


def write(name, tensors, md):
    path = os.path.join(OUT_DIR, name)
    save(path, tensors, md)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


def main():
    torch.set_num_threads(1)  # summation order, hence bytes, independent of the machine's cores
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    y = make_eval(f"microaunet_{SMALL}.safetensors", "microaunet", SMALL, 1, True)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}")
    y = make_eval("microaunet_256.safetensors", "microaunet", 256, 2, False)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}")
    y = make_eval(f"microaunet-w8_{SMALL}.safetensors", "microaunet-w8", SMALL, 3, True)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}")
    y, loss = make_train(f"microaunet_train_{SMALL}.safetensors", "microaunet", SMALL, 4)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}, loss {loss.item():.6f}")
    y = make_eval(f"malunet_{SMALL}.safetensors", "malunet", SMALL, 5, True)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}")
    y, loss = make_train(f"malunet_train_{SMALL}.safetensors", "malunet", SMALL, 6, MALUNET_HALF)
    print(f"  output mean {y.mean():.4f} std {y.std():.4f}, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
