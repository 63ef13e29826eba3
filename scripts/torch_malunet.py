"""PyTorch reference of MALUNet (the distillation teacher), written from
/work/shared/design/models.md (MALUNet section): c = [8,16,24,32,48,64], 177,943 parameters.

The C core (core/lib/malunet.c) loads the same state_dict names, so module names here are part
of the contract. They follow MicroAUNet's layout rather than the public code's:

  ours                      public MALUNet code
  enc1..enc3 (conv 3x3)     encoder1..3 .0
  enc4..enc6 .ea, .dga      encoder4..6 .0 (EAblock), .1 (DGA)
  gn1..gn5                  ebn1..ebn5
  scab.sconv                scab.satt.shared_conv2d.0
  scab.conv1d, scab.fc1..5  scab.catt.get_all_att, scab.catt.att1..5
  dec5..dec3 .dga, .ea      decoder1..3 .0 (DGA), .1 (EAblock)
  dec2, dec1 (conv 3x3)     decoder4, decoder5
  dgn5..dgn1                dbn1..dbn5
  final                     final

dec{k} maps c[k] -> c[k-1] as in MicroAUNet (dec5 is the deepest). Inside blocks: DWC is
.dw/.gn/.pw, GAU is .w1/.w2/.wo (DWCs) and .cw, DGA is .dw0...dw3 (the dilated chunk convs),
.gn, .pw, .gau; EA is .conv1, .linear0, .linear1, .conv2, .gn.

The public code ties EA's linear_1 to linear_0 by sharing storage (so every optimiser step
writes both); here they are two parameters, linear1 initialised as the transpose of linear0.

Inputs: sides a multiple of 32 (five 2x poolings). DWC, up2 and count_params come from
torch_microaunet.py, with the same module names.

Run it directly for a self-check (parameter count, shapes):
    /usr/bin/python3 scripts/torch_malunet.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_microaunet import DWC, count_params, up2  # noqa: E402  (blocks both models share)

CHANNELS = {"malunet": [8, 16, 24, 32, 48, 64]}
PARAMS = {"malunet": 177943}


class GAU(nn.Module):
    """Gated attention unit: sigmoid(DWC3) * GELU(DWC5), then DWC3 to o channels + 1x1 shortcut."""

    def __init__(self, i, o):
        super().__init__()
        self.w1 = DWC(i, i, 3)
        self.w2 = DWC(i, i, 5)
        self.wo = DWC(i, o, 3)
        self.cw = nn.Conv2d(i, o, 1, bias=True)

    def forward(self, x):
        x1 = torch.sigmoid(self.w1(x))
        x2 = F.gelu(self.w2(x))
        return F.gelu(self.wo(x1 * x2)) + self.cw(x)


class DGA(nn.Module):
    """Dilated gated attention: four channel chunks through depthwise 3x3 convs of dilations
    7, 5, 2, 1, then GN -> 1x1 -> GELU -> GAU(i->o)."""

    DILATIONS = (7, 5, 2, 1)

    def __init__(self, i, o):
        super().__init__()
        q = i // 4
        for j, d in enumerate(self.DILATIONS):
            setattr(self, f"dw{j}", nn.Conv2d(q, q, 3, padding=d, dilation=d, groups=q, bias=True))
        self.gn = nn.GroupNorm(4, i)
        self.pw = nn.Conv2d(i, i, 1, bias=True)
        self.gau = GAU(i, o)

    def forward(self, x):
        xs = torch.chunk(x, 4, dim=1)
        x = torch.cat([getattr(self, f"dw{j}")(xs[j]) for j in range(4)], dim=1)
        return self.gau(F.gelu(self.pw(self.gn(x))))


class EA(nn.Module):
    """External attention over the N = H*W positions with a 4c-slot memory."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 1, bias=True)
        self.linear0 = nn.Conv1d(c, 4 * c, 1, bias=False)
        self.linear1 = nn.Conv1d(4 * c, c, 1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 1, bias=False)
        self.gn = nn.GroupNorm(4, c)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.conv1(x).view(n, c, h * w)
        a = F.softmax(self.linear0(y), dim=-1)        # over positions
        a = a / (1e-9 + a.sum(dim=1, keepdim=True))   # over the 4c slots
        z = self.linear1(a).view(n, c, h, w)
        return F.gelu(self.gn(self.conv2(z)) + x)


class EncStage(nn.Module):
    """Encoders 4-6: EA(i) then DGA(i->o)."""

    def __init__(self, i, o):
        super().__init__()
        self.ea = EA(i)
        self.dga = DGA(i, o)

    def forward(self, x):
        return self.dga(self.ea(x))


class DecStage(nn.Module):
    """Deep decoders: DGA(i->o) then EA(o)."""

    def __init__(self, i, o):
        super().__init__()
        self.dga = DGA(i, o)
        self.ea = EA(o)

    def forward(self, x):
        return self.ea(self.dga(x))


class SCAB(nn.Module):
    """Spatial-channel attention bridge over t1..t5: a shared dilated 7x7 spatial attention,
    then channel attention from all scales jointly (one linear per scale)."""

    def __init__(self, chans):
        super().__init__()
        self.chans = list(chans)
        s = sum(self.chans)
        self.sconv = nn.Conv2d(2, 1, 7, padding=9, dilation=3, bias=True)
        self.conv1d = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        for k, ck in enumerate(self.chans, 1):
            setattr(self, f"fc{k}", nn.Linear(s, ck))

    def forward(self, ts):
        n = ts[0].shape[0]
        ss, us = [], []
        for t in ts:
            m = torch.cat([t.mean(1, keepdim=True), t.amax(1, keepdim=True)], dim=1)
            s = torch.sigmoid(self.sconv(m)) * t
            ss.append(s)
            us.append(s + t)
        g = torch.cat([F.adaptive_avg_pool2d(u, 1) for u in us], dim=1)  # (N,S,1,1)
        g = self.conv1d(g.view(n, 1, -1)).view(n, -1)                     # (N,S)
        out = []
        for k, (s, u) in enumerate(zip(ss, us), 1):
            ca = torch.sigmoid(getattr(self, f"fc{k}")(g)).view(n, -1, 1, 1)
            out.append(ca * u + s)
        return out


class MALUNet(nn.Module):
    def __init__(self, channels=(8, 16, 24, 32, 48, 64)):
        super().__init__()
        c = list(channels)
        assert len(c) == 6
        self.channels = c
        self.enc1 = nn.Conv2d(3, c[0], 3, padding=1, bias=True)
        self.gn1 = nn.GroupNorm(4, c[0])
        for k in range(2, 6):
            enc = nn.Conv2d(c[k - 2], c[k - 1], 3, padding=1, bias=True) if k <= 3 \
                else EncStage(c[k - 2], c[k - 1])
            setattr(self, f"enc{k}", enc)
            setattr(self, f"gn{k}", nn.GroupNorm(4, c[k - 1]))
        self.enc6 = EncStage(c[4], c[5])
        self.scab = SCAB(c[:5])
        # dec{k} maps c[k] -> c[k-1]; registered 5..1 so the state_dict reads top-down.
        for k in range(5, 0, -1):
            dec = DecStage(c[k], c[k - 1]) if k >= 3 else nn.Conv2d(c[k], c[k - 1], 3, padding=1)
            setattr(self, f"dec{k}", dec)
            setattr(self, f"dgn{k}", nn.GroupNorm(4, c[k - 1]))
        self.final = nn.Conv2d(c[0], 1, 1, bias=True)
        self.apply(init_weights)
        for mod in self.modules():
            if isinstance(mod, EA):
                with torch.no_grad():
                    mod.linear0.weight.copy_(mod.linear1.weight.permute(1, 0, 2))

    def encode(self, x):
        """Encoder features t1..t5 (after GN -> pool -> GELU, before the bridge; these are what
        distillation aligns)."""
        ts = []
        for k in range(1, 6):
            enc, gn = getattr(self, f"enc{k}"), getattr(self, f"gn{k}")
            ts.append(F.gelu(F.max_pool2d(gn(enc(ts[-1] if ts else x)), 2)))
        return ts

    def forward(self, x, return_features=False):
        ts = self.encode(x)
        b = F.gelu(self.enc6(ts[-1]))  # the bridge does not feed encoder 6
        skips = self.scab(ts)
        o = F.gelu(self.dgn5(self.dec5(b))) + skips[4]  # same resolution as t5: no upsampling
        for k in range(4, 0, -1):
            dec, gn = getattr(self, f"dec{k}"), getattr(self, f"dgn{k}")
            o = F.gelu(up2(gn(dec(o)))) + skips[k - 1]
        logits = up2(self.final(o))
        if return_features:
            return logits, ts
        return logits


def init_weights(m):
    """The public code's initialisation: He-normal on fan-out for convs, normal(sqrt(2/(k*out)))
    for conv1d, trunc-normal(0.02) for linears, zero biases; GroupNorm keeps (1, 0). Applied
    children first, so EA's linear1 is drawn after linear0 and linear0 then takes its transpose
    (what the public code's shared storage ends up holding)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv1d):
        m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.out_channels)))
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            m.bias.data.zero_()


if __name__ == "__main__":
    for arch, c in CHANNELS.items():
        m = MALUNet(c).eval()
        n = count_params(m)
        assert n == PARAMS[arch], (arch, n)
        for mod in m.modules():
            if isinstance(mod, EA):
                assert torch.equal(mod.linear0.weight, mod.linear1.weight.permute(1, 0, 2))
        x = torch.randn(2, 3, 128, 128)
        with torch.no_grad():
            y, ts = m(x, return_features=True)
        assert y.shape == (2, 1, 128, 128), y.shape
        for k, t in enumerate(ts):
            assert t.shape == (2, c[k], 128 >> (k + 1), 128 >> (k + 1)), (k, t.shape)
        print(f"{arch}: channels {c}, {n} parameters, output {tuple(y.shape)}")
    print("self-check ok")
