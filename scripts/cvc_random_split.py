#!/usr/bin/env python3
"""A random frame split of CVC-ClinicDB with the sizes of the shipped sequence split (450 train,
96 test), to measure how much a random split inflates the score (near-identical neighbouring
frames of one video land on both sides), as in the papers' random splits.
Usage: scripts/cvc_random_split.py OUTDIR [SEED=1]  -> OUTDIR/train.txt, OUTDIR/test.txt"""
import os
import random
import sys


def read_split(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split()


data = os.environ.get("POLYPSEG_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))
splits = os.path.join(data, "cvc-clinicdb", "splits")
out, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
train, test = read_split(os.path.join(splits, "train.txt")), read_split(os.path.join(splits, "test.txt"))
frames = sorted(train + test, key=lambda f: int(f.split(".")[0]))
chosen = set(random.Random(seed).sample(frames, len(test)))
os.makedirs(out, exist_ok=True)
for name, keep in (("train.txt", lambda f: f not in chosen), ("test.txt", lambda f: f in chosen)):
    with open(os.path.join(out, name), "w", encoding="utf-8") as fh:
        fh.write("".join(f + "\n" for f in frames if keep(f)))
print(f"{out}: {len(frames) - len(test)} train, {len(test)} test frames (seed {seed})")
