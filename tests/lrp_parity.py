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
    ("2 levels, trilinear up, leaky ReLU", dict(levels=2, base_channels=6, blocks=1, norm="none", down="max_pool", up="trilinear",
                                                activation="leaky_relu"), (6, 11, 18, 15)),
    ("3 levels, batch norm, nearest up", dict(levels=3, base_channels=4, blocks=1, norm="batch", down="max_pool", up="nearest"), (6, 16, 16, 12)),
]


def exact_identity_norms(model):
    """After SequentialMergeBatchNorm has merged each norm into its conv (on entering the
    attributor), the norm is meant to be the identity, but Zennit leaves its eps in place, so it
    scales by 1/sqrt(1 + eps). That artefact compounds through the layers (~5e-5 here) and is not
    part of the method; with eps = 0 the merged norm is exactly the identity, as in SegLRP."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = 0.0


def zennit_composite(name, low, high):
    canon = [SequentialMergeBatchNorm()]
    if name == "Epsilon":
        return LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon(1e-6))], canonizers=canon)
    if name == "EpsilonGammaBox":
        return EpsilonGammaBox(low=low, high=high, canonizers=canon)
    return {"EpsilonPlus": EpsilonPlus, "EpsilonAlpha2Beta1": EpsilonAlpha2Beta1, "EpsilonPlusFlat": EpsilonPlusFlat,
            "EpsilonAlpha2Beta1Flat": EpsilonAlpha2Beta1Flat}[name](canonizers=canon)


# (net, composite) pairs whose region map is also checked (Zennit's loop costs a pass per voxel).
# Not plain Epsilon on the norm nets: with ε = 1e-6, outputs z ≈ 0 make single maps agree only to
# ~5e-5 (float32, two conv implementations), and the region's 1/ΣM_a weights amplify that.
REGION_CHECKS = {(1, "EpsilonGammaBox"), (2, "EpsilonPlus"), (3, "EpsilonAlpha2Beta1")}
LEFT_OUT_FRACTION = 1e-3  # crate/src/lrp/region_map.rs


def region_check(label, name, model, xp, shape, low, high, tmp, weights):
    """The per-voxel region map of Chlebus et al. 2019 computed with Zennit, one pass per voxel, against
    SegLRP's two-pass result for the same 4x4x4 box (64 voxels)."""
    d, h, w = shape[1:]
    box = (d // 2 - 1, h // 2 - 2, w // 2 - 2, d // 2 + 1, h // 2 + 3, w // 2 + 3)  # 2x5x5 = 50 voxels
    summary = json.loads(run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                             "--region", ",".join(map(str, box)), "--class", 1, "--composite", name, "--out", tmp / "region.f32"))
    ours = np.fromfile(tmp / "region.f32", dtype="<f4").reshape(shape)
    maps = []
    composite = zennit_composite(name, low, high)
    with Gradient(model=model, composite=composite) as attributor:
        exact_identity_norms(model)
        for z in range(box[0], box[3]):
            for y in range(box[1], box[4]):
                for x in range(box[2], box[5]):
                    onehot = torch.zeros(1, 2, *xp.shape[2:])
                    onehot[0, 1, z, y, x] = 1.0
                    _, rel = attributor(xp.clone().requires_grad_(True), lambda o: o * onehot)
                    m = rel[0, :, :d, :h, :w].detach().numpy().astype(np.float64)
                    maps.append((m, rel.sum().item()))
    largest = max(abs(t) for _, t in maps)
    kept = [(m, t) for m, t in maps if abs(t) >= LEFT_OUT_FRACTION * largest]
    ref = sum(m / t for m, t in kept)
    scale = np.abs(ref).max()
    diff = np.abs(ours - ref).max()
    ok = diff <= 1e-4 * scale and summary["kept"] == len(kept)
    print(f"{'ok ' if ok else 'FAIL'} {label} / {name}: region of {len(maps)} voxels ({summary['kept']} kept, Zennit {len(kept)}), "
          f"two-pass vs Zennit per-voxel max|ΔM_A|/max|M_A| {diff / scale:.1e}")
    if not ok:
        failures.append(f"{label} / {name}: region map")


def difference_check(label, name, model, xp, shape, voxel, low, high, tmp, weights):
    """Explaining the logit difference tumour − background: Zennit starts from
    output * (onehot_tumour − onehot_background)."""
    d, h, w = shape[1:]
    summary = json.loads(run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                             "--voxel", ",".join(map(str, voxel)), "--class", 1, "--versus", 0, "--composite", name,
                             "--out", tmp / "diff.f32"))
    ours = np.fromfile(tmp / "diff.f32", dtype="<f4").reshape(shape)
    seed = torch.zeros(1, 2, *xp.shape[2:])
    seed[0, 1, voxel[0], voxel[1], voxel[2]] = 1.0
    seed[0, 0, voxel[0], voxel[1], voxel[2]] = -1.0
    with Gradient(model=model, composite=zennit_composite(name, low, high)) as attributor:
        exact_identity_norms(model)
        out, rel = attributor(xp.clone().requires_grad_(True), lambda o: o * seed)
    ref = rel[0, :, :d, :h, :w].detach().numpy()
    diff, scale = np.abs(ours - ref).max(), np.abs(ref).max()
    explained = (out[0, 1] - out[0, 0])[voxel].item()
    ok = diff <= 1e-4 * scale and abs(summary["logit"] - explained) <= 1e-4 * max(1, abs(explained))
    print(f"{'ok ' if ok else 'FAIL'} {label} / {name}: logit difference {summary['logit']:.5f} vs {explained:.5f}, "
          f"max|ΔR|/max|R| {diff / scale:.1e}")
    if not ok:
        failures.append(f"{label} / {name}: logit difference")


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
                exact_identity_norms(model)
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
            if seed == 1 and name == "EpsilonPlus":
                difference_check(label, name, model, xp, shape, voxel, low, high, tmp, weights)
            if (seed, name) in REGION_CHECKS:
                region_check(label, name, model, xp, shape, low, high, tmp, weights)


def normalised(volume):
    """SegLRP's input normalisation (crate/src/io/volume.rs Volume::normalised), in numpy: per
    sequence, z-score over the voxels above 5 % of its 99th percentile, 0 elsewhere."""
    flat = volume.reshape(-1).astype(np.float32)
    k = (flat.size - 1) * 99 // 100
    threshold = max(0.05 * np.partition(flat, k)[k], 0.0)
    inside = volume > threshold
    if not inside.any():
        return np.zeros_like(volume, dtype=np.float32)
    vals = volume[inside].astype(np.float64)
    mean, sd = vals.mean(), max(vals.std(), 1e-6)
    return np.where(inside, (volume - mean) / sd, 0.0).astype(np.float32)


def bundled_check(tmp):
    """The bundled liver model, exported as safetensors, in the twin on demo patient 1 (read
    with nibabel, normalised in numpy): same logits as SegLRP, and the same EpsilonGammaBox
    relevance as Zennit for a tumour voxel."""
    import nibabel as nib
    weights = tmp / "bundled.safetensors"
    run("model", "bundled", "--out", weights)
    run("phantoms", "--patients", "1", "--out", tmp / "cohort")
    d = tmp / "cohort" / "patient01"
    stems = ["t2", "t1_plain", "t1_20s", "t1_60s", "t1_120s", "t1_15min"]
    # nibabel gives [x, y, z]; the network reads [c, z, y, x].
    x = np.stack([normalised(np.asarray(nib.load(d / f"{s}.nii.gz").dataobj, np.float32)).transpose(2, 1, 0) for s in stems])
    label = np.asarray(nib.load(d / "label.nii.gz").dataobj).transpose(2, 1, 0)
    shape = x.shape
    (tmp / "x.f32").write_bytes(np.ascontiguousarray(x).tobytes())
    model, config = twin.load(weights)
    align = 2 ** (config["levels"] - 1)
    xp = torch.from_numpy(pad(x, align))[None]
    with torch.no_grad():
        ref_logits = model(xp)[0, :, :shape[1], :shape[2], :shape[3]].numpy()
    tumour = np.argwhere(label > 0)
    voxel = tuple(int(v) for v in tumour[len(tumour) // 2]) if len(tumour) else (shape[1] // 2, shape[2] // 2, shape[3] // 2)
    run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)), "--voxel", ",".join(map(str, voxel)),
        "--class", 1, "--composite", "EpsilonGammaBox", "--out", tmp / "r.f32", "--logits", tmp / "logits.f32")
    got = np.fromfile(tmp / "logits.f32", dtype="<f4").reshape(ref_logits.shape)
    diff = np.abs(got - ref_logits).max()
    predicted = (ref_logits[1] > ref_logits[0]).sum()
    # The trained model's logits reach ~200, where float32 steps by 1.5e-5: a few steps of
    # summation order (conv.rs adds taps in another order than PyTorch) are allowed, no more.
    tolerance = max(1e-4, 2e-6 * np.abs(ref_logits).max())
    print(f"{'ok ' if diff <= tolerance else 'FAIL'} bundled liver model on demo patient 1 {shape}: twin logits max|diff| {diff:.2e} "
          f"(max|logit| {np.abs(ref_logits).max():.1f}, allowed {tolerance:.1e}; twin predicts {predicted} tumour voxels, label {int(label.sum())})")
    if diff > tolerance:
        failures.append("bundled model: twin logits")
    low = xp.amin(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
    high = xp.amax(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
    inp = xp.clone().requires_grad_(True)
    onehot = torch.zeros(1, 2, *xp.shape[2:])
    onehot[0, 1, voxel[0], voxel[1], voxel[2]] = 1.0
    with Gradient(model=model, composite=zennit_composite("EpsilonGammaBox", low, high)) as attributor:
        _, rel = attributor(inp, lambda o: o * onehot)
    ref = rel[0, :, :shape[1], :shape[2], :shape[3]].detach().numpy()
    ours = np.fromfile(tmp / "r.f32", dtype="<f4").reshape(shape)
    worst = max(np.abs(ours[c] - ref[c]).max() / max(np.abs(ref[c]).max(), 1e-12) for c in range(6))
    print(f"{'ok ' if worst <= 1e-4 else 'FAIL'} bundled liver model / EpsilonGammaBox at tumour voxel {voxel}: max|ΔR|/max|R| per channel {worst:.1e}")
    if worst > 1e-4:
        failures.append("bundled model: relevance")


with tempfile.TemporaryDirectory() as tmp:
    bundled_check(Path(tmp))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("Zennit parity: all composites agree")
