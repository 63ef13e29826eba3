#!/usr/bin/python3
"""Writes per-op PyTorch reference fixtures to tests/fixtures/ops/<case>.safetensors.

Each file holds the op's inputs, its forward output "y", a random upstream gradient "gy" and
the torch.autograd gradient "g<name>" of every differentiable input, plus the op's parameters
as string metadata. Shapes are tiny and seeds fixed, so the files are small and reproducible.

Usage: /usr/bin/python3 scripts/make_op_fixtures.py [output_dir]
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def distinct(*shape, spacing=0.05):
    """Values with no ties (a shuffled grid, spacing apart) so max gradients are well defined."""
    n = 1
    for s in shape:
        n *= s
    vals = (torch.arange(n, dtype=torch.float32) - n / 2) * spacing
    return vals[torch.randperm(n)].reshape(shape)


def away_from_zero(*shape, margin=0.1):
    """Normal values with |x| >= margin, so ReLU's kink is never hit."""
    x = torch.randn(*shape)
    return torch.where(x >= 0, x + margin, x - margin)


def record(out_dir, name, fn, inputs, meta=None, grads=True, extra=None):
    """Runs y = fn(**inputs) and saves inputs, y, gy and d(sum(y*gy))/d(input) for every
    input that requires grad. `extra` maps names to tensors computed after the call."""
    y = fn(**inputs)
    tensors = {k: v.detach().clone() for k, v in inputs.items()}
    tensors["y"] = y.detach()
    if grads:
        gy = torch.randn_like(y)
        diff = {k: v for k, v in inputs.items() if v.requires_grad}
        gs = torch.autograd.grad(y, list(diff.values()), gy)
        tensors["gy"] = gy
        for k, g in zip(diff, gs):
            tensors["g" + k] = g
    for k, v in (extra or {}).items():
        tensors[k] = v.detach().clone()
    meta = dict(meta or {})
    meta["op"] = name
    save(os.path.join(out_dir, name + ".safetensors"), tensors, meta)


def req(t):
    return t.detach().clone().requires_grad_(True)


def conv_case(out_dir, name, x_shape, w_shape, bias, stride, pad, dilation, groups):
    pad_h, pad_w = pad
    inputs = {"x": req(torch.randn(*x_shape)), "w": req(torch.randn(*w_shape) * 0.3)}
    if bias:
        inputs["b"] = req(torch.randn(w_shape[0]))

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=(pad_h, pad_w), dilation=dilation,
                        groups=groups)

    record(out_dir, name, fn, inputs,
           {"stride": stride, "pad_h": pad_h, "pad_w": pad_w, "dilation": dilation,
            "groups": groups, "bias": int(bias)})


def conv_cases(out_dir):
    conv_case(out_dir, "conv2d_s1", (2, 3, 6, 7), (4, 3, 3, 3), True, 1, (1, 1), 1, 1)
    conv_case(out_dir, "conv2d_s2", (2, 3, 7, 8), (4, 3, 3, 3), True, 2, (1, 2), 1, 1)
    # Depthwise 3x3, dilation 2, 'same' padding (= 2), no bias.
    conv_case(out_dir, "conv2d_dw_dil2", (2, 4, 9, 8), (4, 1, 3, 3), False, 1, (2, 2), 2, 4)
    conv_case(out_dir, "conv2d_pw", (2, 5, 6, 6), (3, 5, 1, 1), True, 1, (0, 0), 1, 1)
    conv_case(out_dir, "conv2d_grouped", (2, 4, 6, 5), (6, 2, 3, 3), True, 1, (1, 1), 1, 2)

    # Spatial-attention style: reflection pad 3 then a 7x7 conv 2 -> 1 (no padding).
    inputs = {"x": req(torch.randn(2, 2, 8, 9)), "w": req(torch.randn(1, 2, 7, 7) * 0.1),
              "b": req(torch.randn(1))}
    record(out_dir, "conv2d_7x7_reflect",
           lambda x, w, b: F.conv2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), w, b), inputs,
           {"reflect_pad": 3, "stride": 1, "pad_h": 0, "pad_w": 0, "dilation": 1, "groups": 1,
            "bias": 1})

    # ECA style: conv1d 1 -> 1, k=3, pad 1, no bias.
    inputs = {"x": req(torch.randn(2, 1, 10)), "w": req(torch.randn(1, 1, 3))}
    record(out_dir, "conv1d", lambda x, w: F.conv1d(x, w, None, padding=1), inputs,
           {"stride": 1, "pad": 1, "dilation": 1, "groups": 1, "bias": 0})

    inputs = {"x": req(torch.randn(3, 10)), "w": req(torch.randn(4, 10) * 0.3),
              "b": req(torch.randn(4))}
    record(out_dir, "linear", lambda x, w, b: F.linear(x, w, b), inputs)


def norm_cases(out_dir):
    eps = 1e-5
    c = 3
    inputs = {"x": torch.randn(2, c, 4, 5) * 2 + 0.5, "gamma": torch.randn(c),
              "beta": torch.randn(c), "mean": torch.randn(c), "var": torch.rand(c) + 0.5}
    record(out_dir, "batchnorm_eval",
           lambda x, gamma, beta, mean, var: F.batch_norm(x, mean, var, gamma, beta, False,
                                                          0.1, eps),
           inputs, {"eps": eps}, grads=False)

    x = req(torch.randn(2, c, 4, 5) * 2 + 0.5)
    gamma, beta = req(torch.randn(c)), req(torch.randn(c))
    running_mean, running_var = torch.randn(c), torch.rand(c) + 0.5
    rm, rv = running_mean.clone(), running_var.clone()
    extra = {"running_mean": running_mean, "running_var": running_var,
             "save_mean": x.detach().mean((0, 2, 3)),
             "save_invstd": 1 / torch.sqrt(x.detach().var((0, 2, 3), unbiased=False) + eps)}
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    record(out_dir, "batchnorm_train",
           lambda x, gamma, beta: F.batch_norm(x, rm, rv, gamma, beta, True, 0.1, eps),
           inputs, {"eps": eps, "momentum": 0.1},
           extra=dict(extra, running_mean_new=rm, running_var_new=rv))

    inputs = {"x": req(torch.randn(2, 8, 3, 4) * 1.5 - 0.3), "gamma": req(torch.randn(8)),
              "beta": req(torch.randn(8))}
    record(out_dir, "groupnorm",
           lambda x, gamma, beta: F.group_norm(x, 4, gamma, beta, eps), inputs,
           {"groups": 4, "eps": eps})


def elementwise_cases(out_dir):
    record(out_dir, "relu", lambda x: F.relu(x), {"x": req(away_from_zero(2, 3, 4, 5))})
    record(out_dir, "gelu", lambda x: F.gelu(x), {"x": req(torch.randn(2, 3, 4, 5) * 2)},
           {"approximate": "none"})
    record(out_dir, "sigmoid", lambda x: torch.sigmoid(x), {"x": req(torch.randn(2, 3, 4, 5) * 3)})


def pool_cases(out_dir):
    record(out_dir, "maxpool_odd", lambda x: F.max_pool2d(x, 2, 2),
           {"x": req(distinct(2, 3, 7, 9))})
    record(out_dir, "maxpool_even", lambda x: F.max_pool2d(x, 2, 2),
           {"x": req(distinct(2, 2, 6, 8))})
    record(out_dir, "global_avgpool", lambda x: F.adaptive_avg_pool2d(x, 1),
           {"x": req(torch.randn(2, 3, 5, 6))})

    def mean_max(x):
        return torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)

    record(out_dir, "channel_mean_max", mean_max, {"x": req(distinct(2, 5, 4, 6))})
    # A post-ReLU input: many pixels whose channel maximum (0) is tied, where amax splits the
    # gradient evenly between the tied channels.
    record(out_dir, "channel_mean_max_ties", mean_max,
           {"x": req(F.relu(torch.randn(2, 4, 3, 5) - 0.8))})
    record(out_dir, "reflect_pad", lambda x: F.pad(x, (3, 3, 3, 3), mode="reflect"),
           {"x": req(torch.randn(2, 3, 5, 6))}, {"pad": 3})

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    record(out_dir, "upsample2x", up, {"x": req(torch.randn(2, 3, 4, 5))})
    record(out_dir, "upsample2x_h1", up, {"x": req(torch.randn(1, 2, 1, 3))})


def broadcast_cases(out_dir):
    shapes = {
        "same": ((2, 3, 4, 5), (2, 3, 4, 5)),
        "n1hw": ((2, 3, 4, 5), (2, 1, 4, 5)),
        "nc11": ((2, 3, 4, 5), (2, 3, 1, 1)),
        "1111": ((1, 1, 1, 1), (2, 3, 1, 1)),
        "nch1": ((2, 3, 4, 1), (2, 3, 4, 5)),
    }
    for op, fn in (("add", torch.add), ("mul", torch.mul)):
        for tag, (sa, sb) in shapes.items():
            record(out_dir, f"{op}_{tag}", lambda a, b: fn(a, b),
                   {"a": req(torch.randn(*sa)), "b": req(torch.randn(*sb))})


def channel_cases(out_dir):
    inputs = {"x0": req(torch.randn(2, 2, 3, 4)), "x1": req(torch.randn(2, 3, 3, 4)),
              "x2": req(torch.randn(2, 1, 3, 4))}
    record(out_dir, "concat3", lambda x0, x1, x2: torch.cat([x0, x1, x2], 1), inputs)
    record(out_dir, "slice", lambda x: x[:, 2:5], {"x": req(torch.randn(2, 6, 3, 4))},
           {"c0": 2, "count": 3})


def attention_cases(out_dir):
    # MALUNet's external attention: softmax over the positions of each plane, then each
    # position's channel vector divided by (eps + its sum).
    record(out_dir, "softmax_spatial", lambda x: F.softmax(x.flatten(2), -1).view_as(x),
           {"x": req(torch.randn(2, 3, 4, 5) * 2)})
    eps = 1e-9
    record(out_dir, "channel_normalize", lambda x: x / (eps + x.sum(1, keepdim=True)),
           {"x": req(torch.rand(2, 6, 3, 4) + 0.1)}, {"eps": eps})


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "ops")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # fixed reduction order: reproducible values
    groups = (conv_cases, norm_cases, elementwise_cases, pool_cases, broadcast_cases,
              channel_cases, attention_cases)
    for seed, group in enumerate(groups):
        torch.manual_seed(1000 + seed)
        group(out_dir)


if __name__ == "__main__":
    main()
