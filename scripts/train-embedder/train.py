"""Cross-resolution fine-tuning of Vigil's embedder (issue 22), an offline step.

Reads the crop pairs `vigil train-data distill` wrote (crops.u8 + manifest.json), starts from the shipped
embedder's ONNX graph and fine-tunes a copy so that a degraded face lands where the frozen original puts the
sharp one, while the sharp one stays where it was:

    loss = 1 - cos(student(degraded), teacher(clean))
         + lambda_clean * (1 - cos(student(clean), teacher(clean)))
         + contrast * InfoNCE(student(degraded) against the batch's teacher(clean) vectors)

The last term keeps degraded faces of different people apart: pulling every degraded face toward its own
target alone can also pull them toward one another. Identities are split: `--holdout` of them never train and
give the validation figures printed each epoch. Writes the fine-tuned graph as ONNX, checked against the
original by ONNX Runtime before training (cosine > 0.999 on the untrained copy) and after export (the exported
file gives what the trained network gives).
"""

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx2torch import convert


def log(line):
    print(line, file=sys.stderr, flush=True)


def progress(label, done, total, started):
    """A bar on a terminal, plain lines otherwise (a line every tenth)."""
    if sys.stderr.isatty():
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{label}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({time.time() - started:.0f} s)")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    elif done == total or done % max(1, total // 10) == 0:
        log(f"{label}: {done}/{total} ({100 * done // total}%, {time.time() - started:.0f} s)")


def load_pairs(data_dir):
    with open(os.path.join(data_dir, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "vigil-distill-1":
        raise SystemExit(f"{data_dir}/manifest.json is not vigil train-data distill output")
    h, w, per = manifest["height"], manifest["width"], manifest["perPhoto"]
    n = len(manifest["photos"])
    raw = np.fromfile(os.path.join(data_dir, "crops.u8"), dtype=np.uint8)
    if raw.size != n * per * h * w * 3:
        raise SystemExit(f"crops.u8 holds {raw.size} bytes; the manifest says {n} photos x {per} crops of {w}x{h}x3")
    # photos x crops x H x W x C (packed BGR, as the embedder takes it: the graph normalises itself)
    return manifest, raw.reshape(n, per, h, w, 3)


def to_tensor(crops):
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()


def embed(net, x, batch=64):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(F.normalize(net(x[i : i + batch]).flatten(1), dim=1))
    return torch.cat(out)


def ort_embed(path, x):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    y = session.run(None, {name: x.numpy()})[0].reshape(len(x), -1)
    return F.normalize(torch.from_numpy(y), dim=1)


def export(net, path, h, w):
    net.eval()
    dummy = torch.zeros(1, 3, h, w)
    torch.onnx.export(
        net,
        dummy,
        path,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=13,
    )
    onnx.checker.check_model(onnx.load(path))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder written by vigil train-data distill")
    p.add_argument("--teacher", required=True, help="the shipped embedder's ONNX file (e.g. .vigil/models/reid-0095.onnx)")
    p.add_argument("--out", required=True, help="the fine-tuned ONNX file to write")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=32, help="photos a step (each gives a degraded and a clean crop)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lambda-clean", type=float, default=1.0)
    p.add_argument("--contrast", type=float, default=0.1)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--holdout", type=float, default=0.1, help="share of identities kept out for validation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    manifest, crops = load_pairs(args.data)
    n, per, h, w, _ = crops.shape
    identities = sorted({ph["identity"] for ph in manifest["photos"]})
    held = set(rng.choice(identities, size=max(1, int(len(identities) * args.holdout)), replace=False).tolist())
    val_idx = np.array([i for i, ph in enumerate(manifest["photos"]) if ph["identity"] in held])
    train_idx = np.array([i for i, ph in enumerate(manifest["photos"]) if ph["identity"] not in held])
    log(f"{n} photos x {per} crops ({w}x{h}); training on {len(train_idx)} photos, validating on {len(val_idx)} of {len(held)} held-out identities")

    teacher = convert(onnx.load(args.teacher)).eval()
    student = copy.deepcopy(teacher)
    for param in teacher.parameters():
        param.requires_grad_(False)

    # The converted graph must be the original before it is trained, or every figure after is meaningless.
    probe = to_tensor(crops[val_idx[:16], 0])
    untrained = os.path.splitext(args.out)[0] + ".untrained.onnx"
    export(student, untrained, h, w)
    agreement = (ort_embed(args.teacher, probe) * ort_embed(untrained, probe)).sum(1).min().item()
    os.remove(untrained)
    log(f"converted, untrained graph against the original (ONNX Runtime): least cosine {agreement:.6f}")
    if agreement < 0.999:
        raise SystemExit("the converted graph does not reproduce the original embedder (cosine < 0.999)")

    clean = to_tensor(crops[:, 0])
    flipped = torch.flip(clean, dims=[3])
    started = time.time()
    targets = embed(teacher, clean)
    targets_flipped = embed(teacher, flipped)
    log(f"teacher vectors of {n} clean crops and their mirror images ({time.time() - started:.0f} s)")

    def validate(net):
        """Mean cosine of each held-out degraded crop to its clean teacher vector, and of clean to clean."""
        net.eval()
        deg = to_tensor(crops[val_idx, 1:].reshape(-1, h, w, 3))
        d = embed(net, deg).reshape(len(val_idx), per - 1, -1)
        t = targets[val_idx]
        to_target = (d * t[:, None, :]).sum(2).mean().item()
        # How often a degraded crop's nearest clean teacher vector among the held-out photos is its own.
        nearest = (d.reshape(-1, d.shape[2]) @ t.T).argmax(1).reshape(len(val_idx), per - 1)
        rank1 = (nearest == torch.arange(len(val_idx))[:, None]).float().mean().item()
        keep = (embed(net, to_tensor(crops[val_idx, 0])) * t).sum(1).mean().item()
        return to_target, rank1, keep

    base = validate(teacher)
    log(f"before: held-out degraded->clean cosine {base[0]:.4f}, rank-1 {base[1]:.4f}; clean kept {base[2]:.4f}")
    optimiser = torch.optim.Adam(student.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(train_idx) / args.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=args.epochs * steps_per_epoch)
    history = [{"epoch": 0, "degradedCosine": base[0], "rank1": base[1], "cleanKept": base[2]}]
    for epoch in range(1, args.epochs + 1):
        student.train()
        order = rng.permutation(train_idx)
        started = time.time()
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            variant = rng.integers(1, per, size=len(idx))
            deg = crops[idx, variant].astype(np.float32)
            # Sensor noise on top of the compression, drawn per crop.
            sigma = rng.uniform(0, 6, size=(len(idx), 1, 1, 1)) * (rng.random((len(idx), 1, 1, 1)) < 0.5)
            deg = np.clip(deg + rng.normal(size=deg.shape) * sigma, 0, 255)
            x_deg = torch.from_numpy(deg).permute(0, 3, 1, 2).float()
            x_clean = clean[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            x_deg[flip] = torch.flip(x_deg[flip], dims=[3])
            x_clean[flip] = torch.flip(x_clean[flip], dims=[3])
            t = torch.where(flip[:, None], targets_flipped[idx], targets[idx])
            y = F.normalize(student(torch.cat([x_deg, x_clean])).flatten(1), dim=1)
            s_deg, s_clean = y[: len(idx)], y[len(idx) :]
            loss = (1 - (s_deg * t).sum(1)).mean() + args.lambda_clean * (1 - (s_clean * t).sum(1)).mean()
            if args.contrast > 0:
                logits = s_deg @ t.T / args.temperature
                loss = loss + args.contrast * F.cross_entropy(logits, torch.arange(len(idx)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
            progress(f"epoch {epoch}/{args.epochs}", step + 1, steps_per_epoch, started)
        v = validate(student)
        history.append({"epoch": epoch, "loss": total / steps_per_epoch, "degradedCosine": v[0], "rank1": v[1], "cleanKept": v[2]})
        log(f"epoch {epoch}: loss {total / steps_per_epoch:.4f}; held-out degraded->clean cosine {v[0]:.4f}, rank-1 {v[1]:.4f}; clean kept {v[2]:.4f} ({time.time() - started:.0f} s)")

    export(student, args.out, h, w)
    exported = ort_embed(args.out, probe)
    same = (exported * embed(student.eval(), probe)).sum(1).min().item()
    if same < 0.999:
        raise SystemExit(f"the exported file does not give the trained network's vectors (least cosine {same:.6f})")
    digest = sha256(args.out)
    summary = {
        "out": os.path.abspath(args.out),
        "sha256": digest,
        "teacher": os.path.abspath(args.teacher),
        "teacherSha256": sha256(args.teacher),
        "data": os.path.abspath(args.data),
        "photos": {"train": int(len(train_idx)), "validation": int(len(val_idx))},
        "options": vars(args),
        "history": history,
    }
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({"out": summary["out"], "sha256": digest, "history": history}))


if __name__ == "__main__":
    main()
