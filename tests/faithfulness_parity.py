"""SegLRP's attribution methods beside LRP against Captum 0.9 and Zennit 0.5.1 on the PyTorch
twin (tests/twin.py).

Run by `npm test` with the venv's Python (CPU torch, captum, zennit):
    SEGLRP_BIN=target/release/seglrp python tests/faithfulness_parity.py

For random-weight U-Nets of several kinds and a box of output voxels, `seglrp relevance
--method M --region BOX` must give the reference's map of the box's summed tumour logit
S(x) = sum_a y_1(a) (max abs diff <= 1e-4 x max|map|):
  gradient             Captum Saliency(abs=False)
  gradient_x_input     Captum InputXGradient
  integrated_gradients Zennit IntegratedGradients (zero baseline)
  smoothgrad           Zennit SmoothGrad, fed SegLRP's noise (its SplitMix64 + Box-Muller,
                       reimplemented below) in place of torch.randn_like
  occlusion            Captum Occlusion (zero baseline, all channels, overlapping patches)
(Zennit's attributors are given `sel`, the box's one-hot, as the output gradient: the gradient of
S, where LRP's start is `output * sel`.) The boxes are large enough that the box's receptive window is the whole padded grid (checked),
so that the references, which run on the whole input, see the same patches and noise range.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from captum.attr import InputXGradient, Occlusion, Saliency
from zennit.attribution import IntegratedGradients, SmoothGrad

sys.path.insert(0, str(Path(__file__).parent))
import twin  # noqa: E402

BIN = os.environ["SEGLRP_BIN"]
torch.set_num_threads(2)

NETS = [
    ("2 levels, no norm, max-pool", dict(levels=2, base_channels=8, blocks=1, norm="none", down="max_pool"), (3, 12, 14, 13)),
    ("3 levels, batch norm, strided conv, 2 blocks", dict(levels=3, base_channels=4, blocks=2, norm="batch", down="strided_conv"),
     (2, 13, 12, 11)),
    ("2 levels, instance norm, trilinear up, leaky ReLU",
     dict(levels=2, base_channels=6, blocks=1, norm="instance", down="max_pool", up="trilinear", activation="leaky_relu"), (4, 11, 12, 10)),
]
IG_STEPS, SAMPLES, NOISE, PATCH, STRIDE, SEED = 6, 4, 0.1, 4, 3, 11
failures = []


def run(*args):
    out = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"seglrp {' '.join(map(str, args))}: {out.stderr}")
    return out.stdout


class SplitMix:
    """crate/src/rng.rs, bit for bit (normal() in float32 as in Rust)."""
    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = (seed ^ 0x9E3779B97F4A7C15) & self.MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def uniform(self):
        return np.float32(self.next() >> 40) / np.float32(1 << 24)

    def normal(self):
        u1 = max(self.uniform(), np.float32(1e-7))
        u2 = self.uniform()
        return np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(np.float32(2 * math.pi) * u2)


def pad(x, align):
    c, d, h, w = x.shape
    up = lambda n: -(-n // align) * align
    out = np.zeros((c, up(d), up(h), up(w)), np.float32)
    out[:, :d, :h, :w] = x
    return out


def check(label, method, ours, ref, summary, grid):
    scale = np.abs(ref).max()
    diff = np.abs(ours - ref).max()
    whole = summary["window"] == [[0, 0, 0], list(grid)]
    ok = scale > 0 and diff <= 1e-4 * scale and whole
    print(f"{'ok ' if ok else 'FAIL'} {label} / {method}: max|Δ|/max|map| {diff / max(scale, 1e-30):.1e}"
          f"{'' if whole else ' (the window is not the whole grid)'}")
    if not ok:
        failures.append(f"{label} / {method}")


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    rng = np.random.default_rng(2017)
    for seed, (label, arch, shape) in enumerate(NETS, start=1):
        c = shape[0]
        config = dict(in_channels=c, classes=2, norm_eps=1e-5, **arch)
        cfg, weights = tmp / f"net{seed}.json", tmp / f"net{seed}.safetensors"
        cfg.write_text(json.dumps(config))
        run("model", "init", "--config", cfg, "--seed", seed, "--bias-scale", 0.1, "--out", weights)
        x = rng.standard_normal(shape).astype(np.float32)
        (tmp / "x.f32").write_bytes(x.tobytes())
        align = 2 ** (config["levels"] - 1)
        xp = torch.from_numpy(pad(x, align))[None]
        grid = list(xp.shape[2:])
        d, h, w = shape[1:]
        box = (2, 3, 2, d - 2, h - 3, w - 3)
        sel = torch.zeros(1, 2, *grid)
        sel[0, 1, box[0]:box[3], box[1]:box[4], box[2]:box[5]] = 1.0
        model, _ = twin.load(weights)
        if config["norm"] == "instance":
            twin.freeze_instance_norms(model, xp)  # SegLRP holds norm statistics at the study's
        score = lambda inp: (model(inp) * sel).sum(dim=(1, 2, 3, 4))

        def ours(method, *extra):
            summary = json.loads(run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                                     "--region", ",".join(map(str, box)), "--class", 1, "--method", method, "--baseline", "zero",
                                     "--ig-steps", IG_STEPS, "--samples", SAMPLES, "--noise-level", NOISE,
                                     "--occlusion-patch", PATCH, "--occlusion-stride", STRIDE, "--seed", SEED,
                                     "--out", tmp / "m.f32", *extra))
            return np.fromfile(tmp / "m.f32", dtype="<f4").reshape(shape), summary

        crop = lambda t: t[0, :, :d, :h, :w].detach().numpy()
        inp = xp.clone().requires_grad_(True)
        got, s = ours("gradient")
        check(label, "gradient (Captum Saliency)", got, crop(Saliency(score).attribute(inp, abs=False)), s, grid)
        got, s = ours("gradient_x_input")
        check(label, "gradient_x_input (Captum InputXGradient)", got, crop(InputXGradient(score).attribute(inp)), s, grid)

        got, s = ours("integrated_gradients")
        with IntegratedGradients(model, n_iter=IG_STEPS) as attributor:
            _, ref = attributor(xp.clone().requires_grad_(True), lambda o: sel)
        check(label, "integrated_gradients (Zennit)", got, crop(ref), s, grid)

        got, s = ours("smoothgrad")
        noise_rng = SplitMix(SEED)
        draws = [torch.from_numpy(np.array([noise_rng.normal() for _ in range(xp.numel())], np.float32).reshape(xp.shape))
                 for _ in range(SAMPLES - 1)]
        real_randn_like = torch.randn_like
        torch.randn_like = lambda t, *a, **k: draws.pop(0)
        try:
            with SmoothGrad(model, noise_level=NOISE, n_iter=SAMPLES) as attributor:
                _, ref = attributor(xp.clone().requires_grad_(True), lambda o: sel)
        finally:
            torch.randn_like = real_randn_like
        check(label, "smoothgrad (Zennit, SegLRP's noise)", got, crop(ref), s, grid)

        got, s = ours("occlusion")
        with torch.no_grad():
            ref = Occlusion(score).attribute(xp, sliding_window_shapes=(c, PATCH, PATCH, PATCH), strides=(1, STRIDE, STRIDE, STRIDE),
                                             baselines=0.0)
        check(label, "occlusion (Captum Occlusion)", got, crop(ref), s, grid)

if failures:
    print(f"{len(failures)} faithfulness parity checks failed: {failures}")
    sys.exit(1)
print("all attribution methods match Captum and Zennit")
