"""Zennit + PyTorch (CPU) against SegLRP's native engine, on the same weights (the bundled
model, exported as safetensors and loaded into the PyTorch twin, tests/twin.py), the same
volume and the same cores; and the forward pass against ONNX Runtime (CPU) running the twin
exported to ONNX, the fastest CPU inference a user would pick. Prints a table with the ratios.
Not a test: nothing is asserted but that all give the same numbers.

    npm run bench:zennit                  # builds what it needs, then runs this
    SEGLRP_BIN=target/release/seglrp python scripts/bench_zennit.py [--shape 6,32,64,64] [--region 1000] [--per-voxel 5]
    SEGLRP_BIN=... python scripts/bench_zennit.py --network nnunet [--shape 1,64,64,64]

`--network nnunet`: an nnU-Net 3d_fullres-shaped PlainConvUNet (6 stages of 32→320 features,
instance norms, leaky ReLU, random weights; nnU-Net's own network class) saved as an nnU-Net
model folder, which SegLRP reads; its forward pass against PyTorch's and ONNX Runtime's, and
SegLRP's click (one LRP-ε pass) beside it.

One LRP pass: Zennit's attributor call is a forward pass plus the modified backward pass, so
it is compared with SegLRP's forward + LRP pass. The region method of Chlebus et al. 2019 runs one such call
per voxel of the region; it is timed on --per-voxel voxels and scaled to |A| (its cost is
linear), against SegLRP's two-pass region map of the same |A| voxels.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from zennit.attribution import Gradient
from zennit.composites import EpsilonGammaBox, LayerMapComposite, layer_map_base
from zennit.rules import Epsilon
from zennit.types import Convolution

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import twin  # noqa: E402
from nnunet_folder import COMMON, model_folder  # noqa: E402

BIN = os.environ["SEGLRP_BIN"]


def composite(name, low, high):
    if name == "Epsilon":
        return LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon(1e-6))])
    return EpsilonGammaBox(low=low, high=high)


def run(*args):
    out = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"seglrp {' '.join(map(str, args))}: {out.stderr}")
    return json.loads(out.stdout)


def best_of(n, f):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return out, min(times)


def ort_forward(net, xt, path, threads, repeat):
    """ONNX Runtime on the same network: export, one CPU session on `threads`, the fastest of `repeat` runs.

    Returns the logits and the seconds. ONNX Runtime applies its own graph optimisations (fused
    conv + activation, its own conv kernels), the fastest CPU inference a user would pick."""
    torch.onnx.export(net, (xt,), path, input_names=["image"], output_names=["logits"], opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = xt.numpy()
    return best_of(repeat, lambda: session.run(None, {"image": x})[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="6,32,64,64", help="C,D,H,W of the input (multiples of 4)")
    ap.add_argument("--region", type=int, default=1000, help="|A| of the region map")
    ap.add_argument("--per-voxel", type=int, default=5, help="voxels on which Zennit's per-voxel method is timed")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--network", choices=["bundled", "nnunet"], default="bundled")
    a = ap.parse_args()
    if a.network == "nnunet":
        return nnunet(a)
    shape = tuple(int(v) for v in a.shape.split(","))
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    c, d, h, w = shape
    centre = (d // 2, h // 2, w // 2)
    side = round(a.region ** (1 / 3))
    box = [centre[0] - side // 2, centre[1] - side // 2, centre[2] - side // 2]
    box += [box[0] + side, box[1] + side, box[2] + side]
    voxels = side ** 3
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = tmp / "bundled.safetensors"
        subprocess.run([BIN, "model", "bundled", "--out", weights], check=True, capture_output=True)
        (tmp / "x.f32").write_bytes(x.tobytes())
        model, config = twin.load(weights)
        model.eval()
        xt = torch.from_numpy(x)[None]
        low = xt.amin(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
        high = xt.amax(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1)
        with torch.no_grad():
            logits, z_forward = best_of(a.repeat, lambda: model(xt))
        ort_logits, ort_s = ort_forward(model, xt, tmp / "twin.onnx", threads, a.repeat)
        ort_diff = np.abs(ort_logits - logits.numpy()).max() / np.abs(logits.numpy()).max()
        print(f"SegLRP native engine vs Zennit 0.5.1 + PyTorch {torch.__version__} (CPU), {threads} threads each, "
              f"bundled model ({config['levels']} levels, {config['base_channels']} channels, {config['blocks']} blocks), "
              f"input {'×'.join(map(str, shape))}; fastest of {a.repeat}; ONNX Runtime {ort.__version__}")
        print()
        print("| composite | what | reference | SegLRP | reference / SegLRP | max\\|Δ\\| / max (vs the reference) |")
        print("|---|---|---|---|---|---|")
        print(f"| — | forward pass (reference: PyTorch) | {z_forward:.2f} s | ", end="")
        first = True
        for name in ["Epsilon", "EpsilonGammaBox"]:
            ours = run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", a.shape, "--voxel", ",".join(map(str, centre)),
                       "--class", 1, "--composite", name, "--out", tmp / "r.f32", "--repeat", a.repeat)
            if first:
                print(f"{ours['forward_s']:.2f} s | {z_forward / ours['forward_s']:.2f} | |")
                print(f"| — | forward pass (reference: ONNX Runtime) | {ort_s:.2f} s | {ours['forward_s']:.2f} s | "
                      f"{ort_s / ours['forward_s']:.2f} | {ort_diff:.1e} (logits vs PyTorch) |")
                first = False
            mine = np.fromfile(tmp / "r.f32", dtype="<f4").reshape(shape)

            def zennit_pass(v):
                onehot = torch.zeros(1, 2, d, h, w)
                onehot[0, 1, v[0], v[1], v[2]] = 1.0
                with Gradient(model=model, composite=composite(name, low, high)) as attributor:
                    _, rel = attributor(xt.clone().requires_grad_(True), lambda o: o * onehot)
                return rel

            rel, z_pass = best_of(a.repeat, lambda: zennit_pass(centre))
            ref = rel[0].detach().numpy()
            diff = np.abs(mine - ref).max() / np.abs(ref).max()
            ours_pass = ours["trace_s"] + ours["lrp_s"]
            print(f"| {name} | forward + one LRP pass, whole volume (reference: Zennit) | {z_pass:.2f} s | {ours_pass:.2f} s "
                  f"({ours['trace_s']:.2f} + {ours['lrp_s']:.2f}) | {z_pass / ours_pass:.2f} | {diff:.1e} |")
            # The paper's method: one attributor call per voxel of the region.
            coords = [(box[0] + i // (side * side), box[1] + (i // side) % side, box[2] + i % side) for i in range(voxels)]
            pick = coords[:: max(1, voxels // a.per_voxel)][: a.per_voxel]
            _, t = best_of(1, lambda: [zennit_pass(v) for v in pick])
            per_voxel = t / len(pick) * voxels
            region = run("relevance", "--model", weights, "--input", tmp / "x.f32", "--shape", a.shape, "--region", ",".join(map(str, box)),
                         "--class", 1, "--composite", name, "--out", tmp / "region.f32", "--repeat", 1)
            ours_region = ours["trace_s"] + region["region_s"]
            print(f"| {name} | region map, \\|A\\| = {voxels} (reference: Zennit's per-voxel loop, timed on {len(pick)}, scaled; SegLRP: two-pass) "
                  f"| {per_voxel:.0f} s | {ours_region:.2f} s | {per_voxel / ours_region:.0f} | |")


NNUNET = ("dynamic_network_architectures.architectures.unet.PlainConvUNet",
          dict(n_stages=6, features_per_stage=[32, 64, 128, 256, 320, 320], kernel_sizes=[[3, 3, 3]] * 6,
               strides=[[1, 1, 1]] + [[2, 2, 2]] * 5, n_conv_per_stage=[2] * 6, n_conv_per_stage_decoder=[2] * 5,
               **COMMON))


def nnunet(a):
    """The forward pass of an nnU-Net 3d_fullres-shaped network: PyTorch, ONNX Runtime, SegLRP."""
    shape = tuple(int(v) for v in (a.shape if a.shape != "6,32,64,64" else "1,64,64,64").split(","))
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    centre = tuple(s // 2 for s in shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, net, _ = model_folder(tmp, "PlainConvUNet", NNUNET[0], shape[0], NNUNET[1], 5)
        net.eval()
        xt = torch.from_numpy(x)[None]
        with torch.no_grad():
            logits, torch_s = best_of(a.repeat, lambda: net(xt))
        ort_logits, ort_s = ort_forward(net, xt, tmp / "net.onnx", threads, a.repeat)
        (tmp / "x.f32").write_bytes(x.tobytes())
        ours = run("relevance", "--model", folder, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                   "--voxel", ",".join(map(str, centre)), "--class", 1, "--composite", "Epsilon",
                   "--out", tmp / "r.f32", "--logits", tmp / "l.f32", "--repeat", a.repeat)
        mine = np.fromfile(tmp / "l.f32", dtype="<f4")
        ref = logits.numpy()[0].ravel()
        diff = np.abs(mine - ref).max() / np.abs(ref).max()
        ort_diff = np.abs(ort_logits - logits.numpy()).max() / np.abs(logits.numpy()).max()
        params = sum(p.numel() for p in net.parameters())
        print(f"nnU-Net 3d_fullres-shaped PlainConvUNet ({params / 1e6:.1f} M parameters), input {'×'.join(map(str, shape))}, "
              f"{threads} threads each; fastest of {a.repeat}; PyTorch {torch.__version__}, ONNX Runtime {ort.__version__}")
        print()
        print("| what | reference | SegLRP | reference / SegLRP | max\\|Δ\\| / max (logits) |")
        print("|---|---|---|---|---|")
        print(f"| forward pass (reference: PyTorch) | {torch_s:.2f} s | {ours['forward_s']:.2f} s | "
              f"{torch_s / ours['forward_s']:.2f} | {diff:.1e} |")
        print(f"| forward pass (reference: ONNX Runtime) | {ort_s:.2f} s | {ours['forward_s']:.2f} s | "
              f"{ort_s / ours['forward_s']:.2f} | {ort_diff:.1e} (ONNX Runtime vs PyTorch) |")
        print(f"| the forward pass LRP reads: every layer kept, each instance norm merged into its conv (SegLRP) | | "
              f"{ours['trace_s']:.2f} s | {ours['trace_s'] / ours['forward_s']:.2f} of the forward pass | |")
        print(f"| a click: one LRP-ε pass after the forward pass (SegLRP) | | {ours['lrp_s']:.2f} s | "
              f"{ours['lrp_s'] / ours['forward_s']:.2f} of the forward pass | |")


if __name__ == "__main__":
    main()
