"""SegLRP's LRP engine against Zennit 0.5.1 on the PyTorch twin (tests/twin.py).

Run by `npm test` with the venv's Python (CPU torch, zennit):
    SEGLRP_BIN=target/release/seglrp python tests/lrp_parity.py

For random-weight U-Nets (no norm + max-pool; batch norm + strided-conv down, two blocks a
level; instance norm + max-pool), odd volume sizes (zero-padded at the end to the pooling grid
on both sides, as the engine does), and every composite: `seglrp model init` writes the
weights, the twin loads them and must give the same logits (max abs diff <= 1e-4), and the
relevance of `seglrp relevance` must equal Zennit's for the same voxel (max abs diff <=
1e-4 x max|R| in every channel).
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus,
                               EpsilonPlusFlat, LayerMapComposite, layer_map_base)
from zennit.rules import Epsilon
from zennit.types import Convolution

sys.path.insert(0, str(Path(__file__).parent))
import twin  # noqa: E402

BIN = os.environ["SEGLRP_BIN"]
torch.set_num_threads(2)

NETS = [
    ("2 levels, no norm, max-pool", dict(levels=2, base_channels=8, blocks=1, norm="none", down="max_pool"), (6, 24, 40, 33)),
    ("3 levels, batch norm, strided conv, 2 blocks", dict(levels=3, base_channels=4, blocks=2, norm="batch", down="strided_conv"), (6, 13, 20, 17)),
    ("3 levels, instance norm, max-pool", dict(levels=3, base_channels=4, blocks=1, norm="instance", down="max_pool"), (6, 24, 40, 33)),
]


def zennit_composite(name, low, high):
    canon = [SequentialMergeBatchNorm()]
    if name == "Epsilon":
        return LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon(1e-6))], canonizers=canon)
    if name == "EpsilonGammaBox":
        return EpsilonGammaBox(low=low, high=high, canonizers=canon)
    return {"EpsilonPlus": EpsilonPlus, "EpsilonAlpha2Beta1": EpsilonAlpha2Beta1, "EpsilonPlusFlat": EpsilonPlusFlat,
            "EpsilonAlpha2Beta1Flat": EpsilonAlpha2Beta1Flat}[name](canonizers=canon)


COMPOSITES = ["Epsilon", "EpsilonPlus", "EpsilonGammaBox", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat"]
failures = []


def run(*args):
    out = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"seglrp {' '.join(map(str, args))}: {out.stderr}")
    return out.stdout


def pad(x, align):
    c, d, h, w = x.shape
    up = lambda n: -(-n // align) * align
    out = np.zeros((c, up(d), up(h), up(w)), np.float32)
    out[:, :d, :h, :w] = x
    return out


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    rng = np.random.default_rng(2019)
    for seed, (label, arch, shape) in enumerate(NETS, start=1):
        config = dict(in_channels=6, classes=2, norm_eps=1e-5, **arch)
        cfg_path, weights = tmp / f"net{seed}.json", tmp / f"net{seed}.safetensors"
        cfg_path.write_text(json.dumps(config))
        run("model", "init", "--config", cfg_path, "--seed", seed, "--bias-scale", 0.1, "--out", weights)
        x = rng.standard_normal(shape).astype(np.float32)
        x[:, :, :, :4] = np.maximum(x[:, :, :, :4], 0)  # some all-positive and zero input too
        x[:, :2] = 0.0
        (tmp / "x.f32").write_bytes(x.tobytes())
        align = 2 ** (config["levels"] - 1)
        xp = torch.from_numpy(pad(x, align))[None]
        d, h, w = shape[1:]
        voxel = (d // 2, h // 3, w - 2)
        low = xp.amin(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
        high = xp.amax(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
        logits_ok = False
        for name in COMPOSITES:
            model, _ = twin.load(weights)
            if config["norm"] == "instance":
                twin.freeze_instance_norms(model, xp)
            args = ["relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                    "--voxel", ",".join(map(str, voxel)), "--class", 1, "--composite", name, "--out", tmp / "r.f32",
                    "--logits", tmp / "logits.f32"]
            summary = json.loads(run(*args))
            ours = np.fromfile(tmp / "r.f32", dtype="<f4").reshape(shape)
            if not logits_ok:
                with torch.no_grad():
                    ref_logits = model(xp)[0, :, :d, :h, :w].numpy()
                got = np.fromfile(tmp / "logits.f32", dtype="<f4").reshape(ref_logits.shape)
                diff = np.abs(got - ref_logits).max()
                print(f"{'ok ' if diff <= 1e-4 else 'FAIL'} {label}: twin logits max|diff| {diff:.2e}")
                if diff > 1e-4:
                    failures.append(f"{label}: logits")
                logits_ok = True
            inp = xp.clone().requires_grad_(True)
            onehot = torch.zeros(1, 2, *xp.shape[2:])
            onehot[0, 1, voxel[0], voxel[1], voxel[2]] = 1.0
            with Gradient(model=model, composite=zennit_composite(name, low, high)) as attributor:
                out, rel = attributor(inp, lambda o: o * onehot)
            ref = rel[0, :, :d, :h, :w].detach().numpy()
            worst = 0.0
            for c in range(6):
                scale = np.abs(ref[c]).max()
                diff = np.abs(ours[c] - ref[c]).max()
                worst = max(worst, diff / scale if scale > 0 else diff)
                if diff > 1e-4 * max(scale, 1e-12) and not (scale == 0 and diff < 1e-12):
                    failures.append(f"{label} / {name}: channel {c} max|diff| {diff:.3e} vs max|R| {scale:.3e}")
            logit = out[0, 1, voxel[0], voxel[1], voxel[2]].item()
            status = "ok " if worst <= 1e-4 else "FAIL"
            print(f"{status} {label} / {name}: max|ΔR|/max|R| per channel {worst:.1e}, logit {summary['logit']:.5f} vs {logit:.5f}")
            if abs(summary["logit"] - logit) > 1e-4 * max(1, abs(logit)):
                failures.append(f"{label} / {name}: logit")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("Zennit parity: all composites agree")
