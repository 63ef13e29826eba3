"""Side-by-side summary of scripts/bench_train.sh's JSON lines: per thread count, the median over
rounds of the C core's and PyTorch's inference time per frame and training img/s, and their ratios.

    python3 scripts/bench_ratio.py out/bench-train.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    infer = defaultdict(list)  # (impl, threads) -> ms per frame, one per round
    train = defaultdict(list)  # (impl, threads) -> img/s; the C core's training runs on one thread
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["impl"] == "pytorch":
            infer[("pytorch", r["threads"])].append(r["infer_ms_per_frame"])
            train[("pytorch", r["threads"])].append(r["img_per_s"])
        else:
            infer[("c", r["threads"])].append(r["infer_ms_p50"])
            if r.get("train_img_per_s"):
                train[("c", r["threads"])].append(r["train_img_per_s"])
    med = {k: statistics.median(v) for k, v in infer.items()}
    rounds = min(len(v) for v in infer.values())
    print(f"median of {rounds} interleaved rounds ({path})")
    print(f"{'threads':>7}  {'C ms/frame':>10}  {'PyTorch ms':>10}  {'ratio':>6}")
    for threads in sorted({t for _, t in infer}):
        c, t = med.get(("c", threads)), med.get(("pytorch", threads))
        if c and t:
            print(f"{threads:>7}  {c:10.3f}  {t:10.3f}  {t / c:5.1f}x")
    best_torch = min(v for (impl, _), v in med.items() if impl == "pytorch")
    best_c = min(v for (impl, _), v in med.items() if impl == "c")
    print(f"fastest against fastest: C {best_c:.3f} ms, PyTorch {best_torch:.3f} ms: {best_torch / best_c:.1f}x")
    c_train = [v for (impl, _), vs in train.items() if impl == "c" for v in vs]
    for (impl, threads), vs in sorted(train.items()):
        if impl == "pytorch" and c_train:
            c, t = statistics.median(c_train), statistics.median(vs)
            print(f"training img/s (batch 8): C on one thread {c:.1f}, PyTorch on {threads} thread(s) {t:.1f}: "
                  f"{c / t:.1f}x")


if __name__ == "__main__":
    main(sys.argv[1])
