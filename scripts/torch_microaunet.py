"""PyTorch reference of MicroAUNet, written from /work/shared/design/models.md (MicroAUNet section).

The C core loads the same state_dict names, so module names here are part of the contract:
enc1, gn1, enc2..enc6 (.dwd, .ldga), gn2..gn5, lscab (.conv1d, .fc, .sconv, .alpha, .beta),
dec5..dec1 (.ldga, .dwd), dgn5..dgn1, final.

Input size must be a multiple of 32 and at least 128: t5 is H/32 and the LSCAB spatial branch
reflect-pads it by 3, which torch (and the C op) only allow when 3 < H/32.

Run it directly for a self-check (parameter counts of both variants, shapes, loss):
    /usr/bin/python3 scripts/torch_microaunet.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNELS = {
    "microaunet": [4, 8, 12, 16, 24, 32],
    "microaunet-w8": [8, 16, 24, 32, 48, 64],
}


def up2(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DSD(nn.Module):
    """Depthwise 3x3 (dilation d) -> BN -> ReLU -> pointwise i->o -> BN -> ReLU, no conv biases."""

    def __init__(self, i, o, d):
        super().__init__()
        self.dw = nn.Conv2d(i, i, 3, padding=d, dilation=d, groups=i, bias=False)
        self.bn1 = nn.BatchNorm2d(i)
        self.pw = nn.Conv2d(i, o, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)

    def forward(self, x):
        x = F.relu(self.bn1(self.dw(x)))
        return F.relu(self.bn2(self.pw(x)))


class DWD(nn.Module):
    """Two DSD blocks (dilation 2 then 1) with a residual around both."""

    def __init__(self, ch):
        super().__init__()
        self.dsd1 = DSD(ch, ch, 2)
        self.dsd2 = DSD(ch, ch, 1)

    def forward(self, x):
        y = F.gelu(self.dsd1(x))
        return F.gelu(self.dsd2(y) + x)


class DWC(nn.Module):
    """Depthwise kxk (bias) -> GroupNorm(4) -> pointwise i->o (bias)."""

    def __init__(self, i, o, k):
        super().__init__()
        self.dw = nn.Conv2d(i, i, k, padding=k // 2, groups=i, bias=True)
        self.gn = nn.GroupNorm(4, i)
        self.pw = nn.Conv2d(i, o, 1, bias=True)

    def forward(self, x):
        return self.pw(self.gn(self.dw(x)))


class LDGA(nn.Module):
    """DWC(3x3), a 1-channel sigmoid gate, DWC(1x1) to o channels, plus a (projected) residual."""

    def __init__(self, i, o):
        super().__init__()
        self.dwc1 = DWC(i, i, 3)
        self.gate = nn.Conv2d(i, 1, 1, bias=False)
        self.dwc2 = DWC(i, o, 1)
        if i != o:  # only then does the residual need a projection (and parameters)
            self.res = DWC(i, o, 1)
        else:
            self.res = None

    def forward(self, x):
        a = self.dwc1(x)
        a = a * torch.sigmoid(self.gate(a))
        r = self.res(x) if self.res is not None else x
        return self.dwc2(a) + r


class EncStage(nn.Module):
    """Encoder stages 2..6: DWD(i) then LDGA(i->o)."""

    def __init__(self, i, o):
        super().__init__()
        self.dwd = DWD(i)
        self.ldga = LDGA(i, o)

    def forward(self, x):
        return self.ldga(self.dwd(x))


class DecStage(nn.Module):
    """Decoder stages: LDGA(i->o) then DWD(o) (the reverse order of the encoder)."""

    def __init__(self, i, o):
        super().__init__()
        self.ldga = LDGA(i, o)
        self.dwd = DWD(o)

    def forward(self, x):
        return self.dwd(self.ldga(x))


class LSCAB(nn.Module):
    """Bridge over t1..t5: channel attention from all scales jointly, spatial attention from one
    shared 7x7 conv, mixed by learnable scalars alpha and beta."""

    def __init__(self, chans):
        super().__init__()
        self.chans = list(chans)
        s = sum(self.chans)
        self.conv1d = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.fc = nn.Linear(s, s)
        self.sconv = nn.Conv2d(2, 1, 7, bias=False)  # padding done by reflect-pad 3 in forward
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.beta = nn.Parameter(torch.full((1,), 0.5))

    def forward(self, ts):
        n = ts[0].shape[0]
        g = torch.cat([F.adaptive_avg_pool2d(t, 1) for t in ts], dim=1)  # (N,S,1,1)
        g = self.conv1d(g.view(n, 1, -1)).view(n, -1)                    # (N,S)
        ca = torch.sigmoid(self.fc(g)).split(self.chans, dim=1)
        out = []
        for t, c in zip(ts, ca):
            m = torch.cat([t.mean(1, keepdim=True), t.amax(1, keepdim=True)], dim=1)
            sa = torch.sigmoid(self.sconv(F.pad(m, (3, 3, 3, 3), mode="reflect")))
            att = self.alpha * c.view(n, -1, 1, 1) + self.beta * sa
            out.append(att * t + t)
        return out


class MicroAUNet(nn.Module):
    def __init__(self, channels=(4, 8, 12, 16, 24, 32)):
        super().__init__()
        c = list(channels)
        assert len(c) == 6
        self.channels = c
        self.enc1 = DSD(3, c[0], 1)
        self.gn1 = nn.GroupNorm(4, c[0])
        for k in range(2, 6):
            setattr(self, f"enc{k}", EncStage(c[k - 2], c[k - 1]))
            setattr(self, f"gn{k}", nn.GroupNorm(4, c[k - 1]))
        self.enc6 = EncStage(c[4], c[5])
        self.lscab = LSCAB(c[:5])
        # dec{k} maps c[k] -> c[k-1]; registered 5..1 so the state_dict reads top-down.
        for k in range(5, 0, -1):
            setattr(self, f"dec{k}", DecStage(c[k], c[k - 1]))
            setattr(self, f"dgn{k}", nn.GroupNorm(4, c[k - 1]))
        self.final = nn.Conv2d(c[0], 1, 1, bias=True)

    def encode(self, x):
        """Encoder features t1..t5 (before LSCAB; these are what distillation aligns) and the
        bottleneck b."""
        ts = [F.gelu(F.max_pool2d(self.gn1(self.enc1(x)), 2))]
        for k in range(2, 6):
            enc, gn = getattr(self, f"enc{k}"), getattr(self, f"gn{k}")
            ts.append(F.gelu(F.max_pool2d(gn(enc(ts[-1])), 2)))
        b = F.gelu(self.enc6(ts[-1]))
        return ts, b

    def forward(self, x, return_features=False):
        ts, b = self.encode(x)
        skips = self.lscab(ts)
        o = F.gelu(self.dgn5(self.dec5(b))) + skips[4]  # same resolution as t5: no upsampling
        for k in range(4, 0, -1):
            dec, gn = getattr(self, f"dec{k}"), getattr(self, f"dgn{k}")
            o = F.gelu(up2(gn(dec(o)))) + skips[k - 1]
        logits = up2(self.final(o))
        if return_features:
            return logits, ts
        return logits


def bce_dice_loss(logits, target):
    """BCE-with-logits (mean over all pixels) + mean over the batch of per-sample (1 - Dice),
    Dice = (2*sum(p*t) + 1) / (sum(p) + sum(t) + 1) with p = sigmoid(logits)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    n = logits.shape[0]
    p = torch.sigmoid(logits).reshape(n, -1)
    t = target.reshape(n, -1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + (1 - dice).mean()


def count_params(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    expected = {"microaunet": 24881, "microaunet-w8": 84281}
    for arch, c in CHANNELS.items():
        m = MicroAUNet(c).eval()
        n = count_params(m)
        assert n == expected[arch], (arch, n)
        x = torch.randn(2, 3, 128, 128)
        with torch.no_grad():
            y, ts = m(x, return_features=True)
        assert y.shape == (2, 1, 128, 128), y.shape
        for k, t in enumerate(ts):
            assert t.shape == (2, c[k], 128 >> (k + 1), 128 >> (k + 1)), (k, t.shape)
        print(f"{arch}: channels {c}, {n} parameters, output {tuple(y.shape)}")
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.ones(1, 1, 4, 4)
    # p = 0.5 everywhere: BCE = ln 2, dice = (2*8 + 1) / (8 + 16 + 1) = 17/25
    want = torch.log(torch.tensor(2.0)) + 1 - 17 / 25
    assert torch.allclose(bce_dice_loss(logits, target), want), bce_dice_loss(logits, target)
    print("self-check ok")
