"""SegLRP's graph engine against PyTorch and Zennit 0.5.1 on nnU-Net and MONAI networks.

Run by `npm test` with the venv's Python (CPU torch, zennit, nnunetv2):
    SEGLRP_BIN=target/release/seglrp python tests/graph_parity.py

For random-weight nnU-Net networks (PlainConvUNet with 2 input channels, ResidualEncoderUNet
with 4; 3 classes; instance norm and leaky ReLU as nnU-Net trains them; an anisotropic stride),
each saved as a real trained-model folder (plans.json, dataset.json,
fold_0/checkpoint_final.pth with nnU-Net's checkpoint entries) that nnU-Net's own
`nnUNetPredictor` loads:
- `seglrp model info` reports its channels, classes and parameter count;
- the logits of `seglrp relevance` equal PyTorch's (max |Δ| <= 1e-4 x max |logit|);
- one voxel's relevance for every composite equals Zennit's: within 1e-4 x max |R| of Zennit in
  float64, or, where float32 itself cannot get that close (LRP-ε with ε = 1e-6 and the residual
  sums' Norm rule divide by outputs near 0: Zennit's own float32 result is up to 8e-3 off on
  SegResNet), within 3x Zennit's float32 distance or 10x the distance the float64 map moves
  when the input is rounded to float32 (which of the two float32 results lands nearer depends
  on the machine's summation order). Zennit has no
  canonizer for instance norm nor a rule for the residual sum written as `out += residual`: this
  test writes them (each norm merged into its conv with the forward pass's statistics; the sum
  as Zennit's `Sum` layer, which its composites give the Norm rule);
- a region map (two passes) equals Zennit's per-voxel loop in float64 (the same bound, against
  Zennit's float32 loop's distance);
- the plain gradient of a box's summed logit (`seglrp relevance --method gradient`) equals
  autograd's on the canonized network in float64 (Captum's Saliency), within 1e-4 x max|grad|;
- `seglrp segment` gives `nnUNetPredictor`'s labels (with and without test-time mirroring, on the
  plans' spacing and resampled, isotropic and anisotropic), and `seglrp explain --predictor` the
  blended logit's relevance, against Zennit's maps of the same windows and mirrorings on nnU-Net's
  own preprocessed data;
- the folder as a .zip (as the page receives it) gives the same card, and the checkpoint's
  mirroring axes are read as nnU-Net reads them however they were saved.
The same for MONAI networks saved as a bundle (configs/inference.json, models/model.pt,
configs/metadata.json) or as network.json beside model.safetensors: BasicUNet (both ways),
SegResNet, DynUNet, and UNet with residual units (PReLU, instance norm without affine) and
without (LeakyReLU, anisotropic kernels).
ONNX exports of an nnU-Net network (opsets 13 and 17), a MONAI SegResNet (opset 17 and the
dynamo-based exporter) and a MONAI UNet (opset 13) are checked the same way.
A plans file naming a network outside what the importer builds is refused by name, and so is an
ONNX op outside the engine's list.
"""
import copy
import itertools
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from captum.attr import Saliency
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus,
                               EpsilonPlusFlat, LayerMapComposite, layer_map_base)
from zennit.layer import Sum
from zennit.rules import Epsilon
from zennit.types import Convolution

from nnunet_folder import CLASSES, COMMON, PLAIN, model_folder
from dynamic_network_architectures.building_blocks.residual import BasicBlockD

BIN = os.environ["SEGLRP_BIN"]
torch.set_num_threads(2)
COMPOSITES = ["Epsilon", "EpsilonPlus", "EpsilonGammaBox", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat"]
NETS = [
    ("PlainConvUNet, 2 channels", PLAIN[0], 2, PLAIN[1], (2, 16, 24, 20)),
    ("ResidualEncoderUNet, 4 channels", "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet", 4,
     dict(n_stages=4, features_per_stage=[4, 8, 8, 16], kernel_sizes=[[3, 3, 3]] * 4,
          strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], n_blocks_per_stage=[1, 2, 1, 1],
          n_conv_per_stage_decoder=[1, 1, 1], **COMMON), (4, 16, 24, 32)),
]
failures = []


def run(*args, check=True):
    out = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"seglrp {' '.join(map(str, args))}: {out.stderr}")
    return out


def report(ok, text, what):
    print(f"{'ok ' if ok else 'FAIL'} {text}")
    if not ok:
        failures.append(what)


def nnunet_loads(folder, net, x):
    """nnU-Net's own predictor opens the folder and its network gives the same logits."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, device=torch.device("cpu"),
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    theirs = predictor.network
    theirs.load_state_dict(predictor.list_of_parameters[0])
    theirs.eval()
    with torch.no_grad():
        return (theirs(x) - net(x)).abs().max().item()


def canonized(net, x):
    """A copy of `net` for Zennit: every instance norm merged into the conv before it with the
    statistics of this input (frozen), and each BasicBlockD's `out += residual` as Zennit's Sum."""
    import copy
    net = copy.deepcopy(net).eval()
    # nnU-Net's ConvDropoutNormReLU (conv, norm, all_modules) and MONAI's Convolution (conv, adn.N).
    blocks = [m for m in net.modules() if hasattr(m, "all_modules") and hasattr(m, "norm")]
    blocks += [m for m in net.modules() if hasattr(m, "adn") and hasattr(m.adn, "N")]
    stats = {}
    hooks = [b.conv.register_forward_hook(lambda m, i, o, b=b: stats.__setitem__(id(b), o.detach())) for b in blocks]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for b in blocks:
            norm = b.norm if hasattr(b, "norm") else b.adn.N
            z = stats[id(b)].double()
            mean, var = z.mean(dim=(0, 2, 3, 4)), z.var(dim=(0, 2, 3, 4), unbiased=False)
            scale = 1 / torch.sqrt(var + norm.eps)
            shift = -mean * scale
            if norm.weight is not None:  # MONAI's instance norm has no affine by default
                scale, shift = scale * norm.weight.double(), shift * norm.weight.double() + norm.bias.double()
            conv = b.conv
            # A transposed conv's weight is [in, out, k...].
            factor = scale.reshape(1, -1, 1, 1, 1) if isinstance(conv, nn.ConvTranspose3d) else scale.reshape(-1, 1, 1, 1, 1)
            conv.weight.copy_((conv.weight.double() * factor).float())
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
            conv.bias.copy_((bias * scale + shift).float())
            if hasattr(b, "all_modules"):
                i = [j for j, m in enumerate(b.all_modules) if m is b.norm][0]
                b.all_modules[i] = nn.Identity()
                b.norm = nn.Identity()
            else:
                b.adn.N = nn.Identity()
    from monai.networks.blocks.segresnet_block import ResBlock
    from monai.networks.nets import SegResNet
    if isinstance(net, SegResNet):
        canonize_segresnet(net, x)
    from monai.networks.nets import DynUNet
    if isinstance(net, DynUNet):
        canonize_dynunet(net, x)
    from monai.networks.blocks import ResidualUnit
    for m in net.modules():
        if isinstance(m, ResidualUnit):
            m.sum = Sum()
            m.forward = types.MethodType(lambda self, x: self.sum(torch.stack([self.conv(x), self.residual(x)], dim=-1)), m)
        if isinstance(m, BasicBlockD):
            m.sum = Sum()

            def forward(self, x):
                residual = self.skip(x)
                out = self.conv2(self.conv1(x))
                return self.nonlin2(self.sum(torch.stack([out, residual], dim=-1)))
            m.forward = types.MethodType(forward, m)
    return net


def canonize_segresnet(net, x):
    """SegResNet for Zennit: each ResBlock's norm2 merged into conv1 (the forward pass's group
    statistics, frozen); every other group norm (pre-activation: it follows a sum or the input of
    a block) a frozen per-channel affine as a BatchNorm3d, which Zennit passes through; the
    residual sums and the decoder's `up(x) + skip` as Zennit's Sum (the Norm rule)."""
    import copy
    from monai.networks.blocks.segresnet_block import ResBlock
    groups = {}
    hooks = [m.register_forward_hook(lambda m, i, o: groups.__setitem__(id(m), i[0].detach()))
             for m in net.modules() if isinstance(m, nn.GroupNorm)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()

    def affine(norm, z):
        z = z.double()
        n, c = z.shape[:2]
        g = z.reshape(n, norm.num_groups, -1)
        mean, var = g.mean(-1), g.var(-1, unbiased=False)
        mean = mean.repeat_interleave(c // norm.num_groups, 1)[0]
        var = var.repeat_interleave(c // norm.num_groups, 1)[0]
        scale = norm.weight.double() / torch.sqrt(var + norm.eps)
        return scale, norm.bias.double() - mean * scale

    def frozen(norm):
        scale, shift = affine(norm, groups[id(norm)])
        bn = nn.BatchNorm3d(norm.num_channels, eps=0.0).eval()
        with torch.no_grad():
            bn.weight.copy_(scale.float())
            bn.bias.copy_(shift.float())
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
        return bn

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ResBlock):
                scale, shift = affine(m.norm2, groups[id(m.norm2)])
                conv = m.conv1.conv
                conv.weight.copy_((conv.weight.double() * scale.reshape(-1, 1, 1, 1, 1)).float())
                conv.bias = nn.Parameter(shift.float())
                m.norm2 = nn.Identity()
                m.norm1 = frozen(m.norm1)
                m.sum = Sum()
                # One module per use: Zennit's hooks keep one forward call's tensors per module.
                m.act1, m.act2 = copy.deepcopy(m.act), copy.deepcopy(m.act)

                def forward(self, x):
                    y = self.conv2(self.act2(self.norm2(self.conv1(self.act1(self.norm1(x))))))
                    return self.sum(torch.stack([y, x], dim=-1))
                m.forward = types.MethodType(forward, m)
        net.conv_final[0] = frozen(net.conv_final[0])
    net.sums = nn.ModuleList([Sum() for _ in net.up_layers])

    def decode(self, x, down_x):
        for i, (up, upl) in enumerate(zip(self.up_samples, self.up_layers)):
            x = upl(self.sums[i](torch.stack([up(x), down_x[i + 1]], dim=-1)))
        return self.conv_final(x)
    net.decode = types.MethodType(decode, net)


def canonize_dynunet(net, x):
    """DynUNet for Zennit: every instance norm merged into the conv before it (the forward pass's
    statistics, frozen), one activation module per use, and each residual `out += residual` as
    Zennit's Sum."""
    from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetResBlock
    blocks = [m for m in net.modules() if isinstance(m, (UnetBasicBlock, UnetResBlock))]
    pairs = [(b, i) for b in blocks for i in (1, 2, 3) if hasattr(b, f"norm{i}")]
    outs = {}
    hooks = [getattr(b, f"conv{i}").register_forward_hook(lambda m, inp, o, key=(id(b), i): outs.__setitem__(key, o.detach()))
             for b, i in pairs]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for b, i in pairs:
            norm, conv = getattr(b, f"norm{i}"), getattr(b, f"conv{i}").conv
            z = outs[(id(b), i)].double()
            mean, var = z.mean(dim=(0, 2, 3, 4)), z.var(dim=(0, 2, 3, 4), unbiased=False)
            scale = norm.weight.double() / torch.sqrt(var + norm.eps)
            conv.weight.copy_((conv.weight.double() * scale.reshape(-1, 1, 1, 1, 1)).float())
            conv.bias = nn.Parameter((norm.bias.double() - mean * scale).float())
            setattr(b, f"norm{i}", nn.Identity())
    for b in blocks:
        b.act1, b.act2, b.sum = copy.deepcopy(b.lrelu), copy.deepcopy(b.lrelu), Sum()
        if isinstance(b, UnetResBlock):
            def forward(self, inp):
                out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(inp)))))
                residual = self.norm3(self.conv3(inp)) if hasattr(self, "conv3") else inp
                return self.act2(self.sum(torch.stack([out, residual], dim=-1)))
        else:
            def forward(self, inp):
                return self.act2(self.norm2(self.conv2(self.act1(self.norm1(self.conv1(inp))))))
        b.forward = types.MethodType(forward, b)


def zennit_composite(name, low, high):
    if name == "Epsilon":
        return LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon(1e-6))])
    if name == "EpsilonGammaBox":
        return EpsilonGammaBox(low=low, high=high)
    return {"EpsilonPlus": EpsilonPlus, "EpsilonAlpha2Beta1": EpsilonAlpha2Beta1, "EpsilonPlusFlat": EpsilonPlusFlat,
            "EpsilonAlpha2Beta1Flat": EpsilonAlpha2Beta1Flat}[name]()


def zennit_relevance(model, x, name, low, high, onehot):
    with Gradient(model=model, composite=zennit_composite(name, low, high)) as attributor:
        out, rel = attributor(x.clone().requires_grad_(True), lambda o: o * onehot)
    return out, rel[0].detach().numpy()


def monai_folder(root, flat, segresnet=False, dynunet=False, unet=None):
    """A random-weight MONAI network (2 channels, 3 classes) as a bundle, or as network.json
    beside model.safetensors; returns (folder, net, channel names, class names). `unet`: the
    number of residual units of a MONAI UNet."""
    from monai.networks.nets import BasicUNet, DynUNet, SegResNet, UNet
    torch.manual_seed(7)
    if unet is not None:
        args = dict(spatial_dims=3, in_channels=2, out_channels=3, channels=[4, 8, 16], strides=[2, [1, 2, 2]],
                    num_res_units=unet)
        if unet == 0:
            args.update(act="leakyrelu", norm=["instance", {"affine": True}], kernel_size=[3, 3, 1])
        net, target = UNet(**args), "monai.networks.nets.UNet"
    elif dynunet:
        args = dict(spatial_dims=3, in_channels=2, out_channels=3, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, [1, 2, 2]],
                    upsample_kernel_size=[2, 2, [1, 2, 2]], filters=[4, 8, 8, 16], res_block=True)
        net, target = DynUNet(**args), "DynUNet"
    elif segresnet:
        args = dict(spatial_dims=3, in_channels=2, out_channels=3, init_filters=4, blocks_down=[1, 2, 2],
                    blocks_up=[1, 1], norm=["group", {"num_groups": 2}])
        net, target = SegResNet(**args), "SegResNet"
    else:
        args = dict(spatial_dims=3, in_channels=2, out_channels=3, features=[4, 4, 8, 8, 16, 4])
        net, target = BasicUNet(**args), "monai.networks.nets.BasicUNet"
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".adn.N." in name or "norm" in name or name.startswith("conv_final.0") or name.endswith("bias"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
    names, classes = ["T2", "ADC"], ["background", "prostate", "lesion"]
    meta = {"network_data_format": {
        "inputs": {"image": {"num_channels": 2, "channel_def": {"0": names[0], "1": names[1]}}},
        "outputs": {"pred": {"num_channels": 3, "channel_def": {str(i): c for i, c in enumerate(classes)}}}}}
    network_def = {"_target_": target, **args}
    if flat:
        folder = root / ("monai-flat-" + target.rsplit(".", 1)[-1] + str(unet or ""))
        folder.mkdir()
        (folder / "network.json").write_text(json.dumps(network_def))
        (folder / "metadata.json").write_text(json.dumps(meta))
        from safetensors.torch import save_file
        save_file({k: v.clone().contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors")
    else:
        folder = root / ("monai-bundle-" + target.rsplit(".", 1)[-1] + str(unet or ""))
        (folder / "configs").mkdir(parents=True)
        (folder / "models").mkdir()
        (folder / "configs" / "inference.json").write_text(json.dumps({"network_def": network_def, "device": "$torch.device('cpu')"}))
        (folder / "configs" / "metadata.json").write_text(json.dumps(meta))
        torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder, net, names, classes


def within(err, err32, explain64, x64, ref, scale):
    """Whether a float32 map `err` from the float64 reference is as close as float32 allows:
    within 1e-4 or 3x Zennit's own float32 distance; failing that (maps whose rules divide by
    numbers near 0 are ill-conditioned, and how far a float32 result lands depends on the
    machine's summation order), within 10x the distance the float64 map itself moves when the
    input moves by float32 rounding (the largest of three random draws)."""
    if err <= max(1e-4, 3 * err32):
        return True, ""
    gen = torch.Generator().manual_seed(3)
    moved = max(np.abs(explain64(x64 * (1 + 6e-8 * torch.randn(x64.shape, generator=gen, dtype=torch.float64)))
                       - ref).max() / scale for _ in range(3))
    return err <= 10 * moved, f"; float64 moves {moved:.1e} under float32 rounding of the input"


def check(label, folder, net, names, classes, x, region_composite, params):
    """The model card, logits, every composite's voxel relevance and one region map."""
    shape = x.shape
    (tmp / "x.f32").write_bytes(x.tobytes())
    xt = torch.from_numpy(x)[None]
    card = json.loads(run("model", "info", folder, "--json").stdout)
    ok = [c["name"] for c in card["channels"]] == names and card["classes"] == classes and card["parameters"] == params
    report(ok, f"{label}: model card ({card['parameters']} parameters, channels {names}, classes {classes})", f"{label}: card")
    d, h, w = shape[1:]
    voxel = (d // 2, h // 3, w - 3)
    low = xt.amin(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1).expand_as(xt)
    high = xt.amax(dim=(0, 2, 3, 4)).reshape(1, -1, 1, 1, 1).expand_as(xt)
    model = canonized(net, xt)
    model64 = copy.deepcopy(model).double()
    x64, low64, high64 = xt.double(), low.double(), high.double()
    k = len(classes)
    onehot = torch.zeros(1, k, d, h, w)
    onehot[0, 1, voxel[0], voxel[1], voxel[2]] = 1.0
    for i, name in enumerate(COMPOSITES):
        summary = json.loads(run("relevance", "--model", folder, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                                 "--voxel", ",".join(map(str, voxel)), "--class", 1, "--composite", name,
                                 "--out", tmp / "r.f32", "--logits", tmp / "logits.f32").stdout)
        if i == 0:
            with torch.no_grad():
                ref_logits = net(xt)[0].numpy()
            got = np.fromfile(tmp / "logits.f32", dtype="<f4").reshape(ref_logits.shape)
            err = np.abs(got - ref_logits).max() / np.abs(ref_logits).max()
            report(err <= 1e-4, f"{label}: logits max|Δ|/max|logit| {err:.1e}", f"{label}: logits")
        ours = np.fromfile(tmp / "r.f32", dtype="<f4").reshape(shape)
        out, ref = zennit_relevance(model64, x64, name, low64, high64, onehot.double())
        _, ref32 = zennit_relevance(model, xt, name, low, high, onehot)
        scale = np.abs(ref).max()
        err, err32 = np.abs(ours - ref).max() / scale, np.abs(ref32 - ref).max() / scale
        logit = out[0, 1, voxel[0], voxel[1], voxel[2]].item()
        ok, why = within(err, err32, lambda xp: zennit_relevance(model64, xp, name, low64, high64, onehot.double())[1],
                         x64, ref, scale)
        ok = ok and abs(summary["logit"] - logit) <= 1e-4 * max(1.0, abs(logit))
        report(ok, f"{label} / {name}: max|ΔR|/max|R| vs Zennit float64 {err:.1e} (Zennit float32 {err32:.1e}{why}), "
               f"logit {summary['logit']:.5f} vs {logit:.5f}", f"{label} / {name}")

    # The two-pass region map against Zennit's loop over the region's voxels.
    name = region_composite
    box = (d // 2 - 1, h // 2 - 1, w // 2 - 1, d // 2 + 1, h // 2 + 2, w // 2 + 2)
    summary = json.loads(run("relevance", "--model", folder, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
                             "--region", ",".join(map(str, box)), "--class", 2, "--composite", name,
                             "--out", tmp / "region.f32").stdout)
    ours = np.fromfile(tmp / "region.f32", dtype="<f4").reshape(shape)
    def onehots():
        for z in range(box[0], box[3]):
            for y in range(box[1], box[4]):
                for xx in range(box[2], box[5]):
                    onehot = torch.zeros(1, k, d, h, w, dtype=torch.float64)
                    onehot[0, 2, z, y, xx] = 1.0
                    yield onehot
    maps = []
    for onehot in onehots():
        _, rel = zennit_relevance(model64, x64, name, low64, high64, onehot)
        _, rel32 = zennit_relevance(model, xt, name, low, high, onehot.float())
        maps.append((rel, rel.sum(), rel32.astype(np.float64), rel32.astype(np.float64).sum()))
    largest = max(abs(m[1]) for m in maps)
    kept = [m for m in maps if abs(m[1]) >= 1e-3 * largest]
    ref = sum(m[0] / m[1] for m in kept)
    ref32 = sum(m[2] / m[3] for m in kept)
    scale = np.abs(ref).max()
    err, err32 = np.abs(ours - ref).max() / scale, np.abs(ref32 - ref).max() / scale

    def region_loop(xp):
        rels = [zennit_relevance(model64, xp, name, low64, high64, onehot)[1] for onehot in onehots()]
        return sum(r / r.sum() for r, m in zip(rels, maps) if abs(m[1]) >= 1e-3 * largest)
    ok, why = within(err, err32, region_loop, x64, ref, scale)
    report(ok and summary["kept"] == len(kept),
           f"{label} / {name}: region of {len(maps)} voxels, two-pass vs Zennit's float64 per-voxel loop "
           f"max|ΔM_A|/max|M_A| {err:.1e} (Zennit float32 {err32:.1e}{why})",
           f"{label}: region map")

    # The plain gradient of the same box's summed logit (the walk without rules: ReLU/PReLU gates,
    # residual sums copied, norms at the study's statistics) against autograd on the canonized
    # network in float64 (Captum's Saliency).
    run("relevance", "--model", folder, "--input", tmp / "x.f32", "--shape", ",".join(map(str, shape)),
        "--region", ",".join(map(str, box)), "--class", 2, "--method", "gradient", "--out", tmp / "grad.f32")
    ours = np.fromfile(tmp / "grad.f32", dtype="<f4").reshape(shape)
    sel = torch.zeros(1, k, d, h, w, dtype=torch.float64)
    sel[0, 2, box[0]:box[3], box[1]:box[4], box[2]:box[5]] = 1.0
    ref = Saliency(lambda inp: (model64(inp) * sel).sum(dim=(1, 2, 3, 4))).attribute(x64.clone().requires_grad_(True), abs=False)
    ref = ref[0].detach().numpy()
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    report(err <= 1e-4, f"{label}: gradient of the region's summed logit vs autograd float64 max|Δ|/max|∇| {err:.1e}",
           f"{label}: gradient")


def archive_check(label, folder, card):
    """The folder as a .zip (what nnUNetv2_export_model_to_zip writes, the page's drop) gives the
    same card; the mirroring axes are read from the checkpoint as nnU-Net reads them, however they
    were saved (a tuple, a list, None; pickle protocols 2 and 4)."""
    import shutil
    root = folder.parent.parent
    archive = shutil.make_archive(str(root / "export"), "zip", root, folder.parent.name)
    zipped = json.loads(run("model", "info", archive, "--json").stdout)
    same = {k: v for k, v in zipped.items() if k != "sources"} == {k: v for k, v in card.items() if k != "sources"}
    report(same and zipped["sources"][0].endswith("plans.json"),
           f"{label}: the model folder's .zip gives the folder's card", f"{label}: zip")
    ckpt = folder / "fold_0" / "checkpoint_final.pth"
    saved = torch.load(ckpt, weights_only=False)
    for value, protocol in [(None, 2), ((0, 2), 2), ([1], 4), ((2, 1, 0), 4)]:
        variant = root / f"axes-{protocol}" / folder.name
        shutil.rmtree(variant.parent, ignore_errors=True)
        shutil.copytree(folder, variant)
        torch.save({**saved, "inference_allowed_mirroring_axes": value}, variant / "fold_0" / "checkpoint_final.pth",
                   pickle_protocol=protocol)
        nnunet = torch.load(variant / "fold_0" / "checkpoint_final.pth", weights_only=False)["inference_allowed_mirroring_axes"]
        got = json.loads(run("model", "info", variant, "--json").stdout)["inference"]["mirror_axes"]
        report(got == list(nnunet or ()), f"{label}: mirroring axes saved as {value!r} (pickle protocol {protocol}) "
               f"read as {got}", f"{label}: mirroring axes {value!r}")


def predictor_check(label, folder, names):
    """`seglrp segment` on an nnU-Net folder is nnU-Net's own inference: `nnUNetPredictor` on the
    same raw study gives the same labels, with test-time mirroring (both by default) and without
    (`--no-mirroring`, `use_mirroring=False`) — voxel for voxel on the plans' spacing, Dice >= 0.99
    per class where the study is resampled (isotropic-ish, and anisotropic enough for the coarse
    axis to be resampled on its own)."""
    import nibabel as nib
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictors = {}
    for mirror in (True, False):
        predictors[mirror] = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                             device=torch.device("cpu"), verbose=False, allow_tqdm=False)
        predictors[mirror].initialize_from_trained_model_folder(str(folder), use_folds=(0,),
                                                                checkpoint_name="checkpoint_final.pth")
    rng = np.random.default_rng(17)
    cases = (("on the plans' spacing", (2.0, 1.0, 1.0), (30, 52, 44), False),
             ("on the plans' spacing", (2.0, 1.0, 1.0), (30, 52, 44), True),
             ("resampled", (2.6, 0.9, 1.3), (22, 46, 34), True),
             ("resampled, anisotropic (z on its own)", (3.7, 0.8, 1.1), (11, 50, 36), False))
    for n, (what, spacing, (d, h, w), mirror) in enumerate(cases):
        z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (d, h, w)), indexing="ij")
        raw = np.stack([100 + 300 * np.sin(3 * x + c) * np.cos(2 * y - c) + 80 * z + rng.normal(0, 20, (d, h, w))
                        for c in range(len(names))]).astype(np.float32)
        raw[:, :, :3] = 0  # background nnU-Net crops away
        study = tmp / f"predictor-{label[:5]}-{n}"
        study.mkdir()
        files = [study / f"case_{c:04d}.nii.gz" for c in range(len(names))]
        for c, f in enumerate(files):
            nib.save(nib.Nifti1Image(raw[c].transpose(2, 1, 0), np.diag([*spacing[::-1], 1.0])), f)
        want = predictors[mirror].predict_single_npy_array(raw, {"spacing": list(spacing)})
        flags = [] if mirror else ["--no-mirroring"]
        out = run("segment", *files, "--model", folder, *flags, "--out", study / "seg.nii.gz")
        got = np.asarray(nib.load(study / "seg.nii.gz").dataobj).transpose(2, 1, 0)
        dice = {k: 2 * ((got == v) & (want == v)).sum() / ((got == v).sum() + (want == v).sum())
                for k, v in CLASSES.items() if (got == v).any() or (want == v).any()}
        counts = [int((want == v).sum()) for v in CLASSES.values()]
        same = (got == want).mean()
        method = json.loads(out.stdout)["method"]
        # Identical labels where nothing is resampled; where the study is, the same numbers up to
        # float rounding in a different order (measured: identical here too).
        ok = ("nnU-Net's predictor" in method and sorted(counts)[1] > 0 and ("mirrored" in method) == mirror
              and (same == 1.0 if what.startswith("on") else min(dice.values()) >= 0.99 and same >= 0.999))
        report(ok, f"{label}: seglrp segment {' '.join(flags)}= nnUNetPredictor(use_mirroring={mirror}) {what} "
               f"({d}×{h}×{w} at {spacing} mm; {method}): {same * 100:.3f} % of voxels equal, Dice "
               + ", ".join(f"{k} {v:.4f}" for k, v in dice.items()) + f" (nnU-Net's classes {counts})",
               f"{label}: predictor {what}, mirroring {mirror}")


def predictor_explain_check(label, folder, net, names):
    """`seglrp explain --predictor`: the relevance of nnU-Net's blended logit equals the same
    Gaussian-weighted mean of Zennit's maps (float64) of every window, and mirroring, that holds
    the voxel, each window's instance norms over that window, on nnU-Net's own preprocessed data
    (`DefaultPreprocessor`: cropped, normalised, resampled)."""
    import nibabel as nib
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    plans = PlansManager(str(folder / "plans.json"))
    config = plans.get_configuration("3d_fullres")
    dataset = json.loads((folder / "dataset.json").read_text())
    spacing, (d, h, w) = (2.6, 0.9, 1.3), (14, 40, 30)
    rng = np.random.default_rng(23)
    raw = rng.gamma(2.0, 150.0, (len(names), d, h, w)).astype(np.float32)
    raw[:, :, :2] = 0
    study = tmp / f"predictor-explain-{label[:5]}"
    study.mkdir()
    files = [study / f"case_{c:04d}.nii.gz" for c in range(len(names))]
    for c, f in enumerate(files):
        nib.save(nib.Nifti1Image(raw[c].transpose(2, 1, 0), np.diag([*spacing[::-1], 1.0])), f)
    data, _, _ = DefaultPreprocessor(verbose=False).run_case_npy(raw.copy(), None, {"spacing": list(spacing)},
                                                                 plans, config, dataset)
    patch = config.patch_size
    assert all(a >= b for a, b in zip(data.shape[1:], patch)), (data.shape, patch)
    voxel_study = (w // 2, h // 2 + 3, d // 2)  # x, y, z on the study's grid
    out = json.loads(run("explain", *files, "--model", folder, "--predictor", "--voxel", ",".join(map(str, voxel_study)),
                         "--class", 2, "--composite", "EpsilonPlus", "--raw", study / "r.f32").stdout)["explanation"]
    at = out["voxel"][::-1]  # the network-grid voxel, z, y, x
    gauss = compute_gaussian(tuple(patch), 1.0 / 8, 10, dtype=torch.float16, device=torch.device("cpu")).double()
    steps = compute_steps_for_sliding_window(data.shape[1:], patch, 0.5)
    holding = [s for s in itertools.product(*steps) if all(o <= v < o + p for o, v, p in zip(s, at, patch))]
    weights = [gauss[tuple(v - o for v, o in zip(at, s))].item() for s in holding]
    mirrorings = [()] + [c for i in range(3) for c in itertools.combinations((2, 3, 4), i + 1)]
    ref = np.zeros(data.shape)
    logit = 0.0
    for s, g in zip(holding, weights):
        sl = tuple(slice(o, o + p) for o, p in zip(s, patch))
        x = torch.from_numpy(data[(slice(None), *sl)])[None].double()
        for axes in mirrorings:
            xf = torch.flip(x, axes) if axes else x
            model = canonized(net, xf.float()).double()
            local = [v - o for v, o in zip(at, s)]
            for a in axes:
                local[a - 2] = patch[a - 2] - 1 - local[a - 2]
            onehot = torch.zeros((1, 3, *patch), dtype=torch.float64)
            onehot[(0, 2, *local)] = 1
            o, r = zennit_relevance(model, xf, "EpsilonPlus", None, None, onehot)
            alpha = g / sum(weights) / len(mirrorings)
            ref[(slice(None), *sl)] += alpha * (np.flip(r, [a - 1 for a in axes]) if axes else r)
            logit += alpha * (o * onehot).sum().item()
    ours = np.fromfile(study / "r.f32", dtype="<f4").reshape(data.shape)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    ok = (err <= 1e-4 and out["grid"] == list(data.shape[1:][::-1]) and len(holding) > 1
          and abs(out["logit"] - logit) <= 1e-4 * max(1.0, abs(logit)))
    # The region of the predictor's class-2 voxels on the network's grid: nnU-Net's own logits there
    # (its float16 blend) pick the same voxels, and every kept voxel's normalised map sums to 1.
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True, device=torch.device("cpu"),
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    theirs = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float().argmax(0).numpy()
    region = json.loads(run("explain", *files, "--model", folder, "--predictor", "--region", "all", "--class", 2,
                            "--composite", "EpsilonPlus").stdout)["explanation"]
    total = region["relevance_sum"] + region["padding_relevance"]
    ok_region = (region["voxels"] == int((theirs == 2).sum()) > 0
                 and abs(total - (region["voxels"] - region["left_out"])) <= 1e-3 * region["voxels"])
    report(ok_region, f"{label}: explain --predictor --region all: {region['voxels']} voxels of class 2 on the network's "
           f"grid (nnU-Net's blend: {int((theirs == 2).sum())}), ΣM_A {total:.2f} for {region['voxels'] - region['left_out']} "
           f"kept voxels", f"{label}: explain --predictor --region")
    report(ok, f"{label}: explain --predictor: the blended logit's relevance ({len(holding)} windows × "
           f"{len(mirrorings)} mirrorings on nnU-Net's preprocessed grid {data.shape[1:]}) vs Zennit's float64 maps "
           f"mixed the same way: max|ΔR|/max|R| {err:.1e}, logit {out['logit']:.5f} vs {logit:.5f}",
           f"{label}: explain --predictor")


def study_check(label, folder, net, names, shape, kwargs):
    """`seglrp segment` and `explain --model` on the channels as NIfTI files (nnU-Net's names,
    case_000N): normalised as nnU-Net does (its own normalisation classes and non-zero mask), the
    segmentation equals PyTorch's argmax and the voxel map equals `seglrp relevance` on the
    normalised tensor."""
    import nibabel as nib
    from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization, ZScoreNormalization
    plans = json.loads((folder / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    rng = np.random.default_rng(5)
    cin, d, h, w = shape
    raw = np.stack([rng.normal(120, 180, (d, h, w)) if c == 0 else rng.gamma(2.0, 150.0, (d, h, w))
                    for c in range(cin)]).astype(np.float32)
    raw[:, :2] = 0  # outside the body in every channel ...
    raw[:, d // 2, h // 2, w // 2] = 0  # ... and a hole inside it, which nnU-Net's mask fills
    mask = create_nonzero_mask(raw)
    seg = np.where(mask, 0, -1).astype(np.int8)
    norm = raw.copy()
    for c, scheme in enumerate(config["normalization_schemes"]):
        cls = {"CTNormalization": CTNormalization, "ZScoreNormalization": ZScoreNormalization}[scheme]
        props = plans["foreground_intensity_properties_per_channel"][str(c)]
        # .run works in place on float32 input: a copy keeps the raw intensities for the files.
        norm[c] = cls(use_mask_for_norm=config["use_mask_for_norm"][c], intensityproperties=props).run(raw[c].copy(), seg)
    study = tmp / f"study-{label[:5]}"
    study.mkdir()
    files = []
    for c in range(cin):
        files.append(study / f"case_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(raw[c].transpose(2, 1, 0), np.diag([1.0, 1.0, 2.0, 1.0])), files[-1])
    with torch.no_grad():
        want = net(torch.from_numpy(norm)[None])[0].argmax(0).numpy()
    out = json.loads(run("segment", *files, "--model", folder, "--whole", "--out", study / "seg.nii.gz").stdout)
    got = np.asarray(nib.load(study / "seg.nii.gz").dataobj).transpose(2, 1, 0)
    same = (got == want).mean()
    ok = same == 1.0 and out["classes"]["tumour"]["voxels"] == int((want == 2).sum())
    report(ok, f"{label}: seglrp segment on NIfTI channels, normalised as nnU-Net: {same * 100:.2f} % of voxels "
           f"equal PyTorch's argmax", f"{label}: segment")
    voxel = (w // 2, h // 3, d // 2)
    run("explain", *reversed(files), "--model", folder, "--voxel", ",".join(map(str, voxel)), "--class", 2,
        "--composite", "EpsilonPlus", "--raw", study / "r.f32", "--json", study / "e.json")
    (study / "norm.f32").write_bytes(norm.tobytes())
    run("relevance", "--model", folder, "--input", study / "norm.f32", "--shape", ",".join(map(str, shape)),
        "--voxel", f"{voxel[2]},{voxel[1]},{voxel[0]}", "--class", 2, "--composite", "EpsilonPlus", "--out", study / "ref.f32")
    ours, ref = (np.fromfile(study / f, dtype="<f4") for f in ("r.f32", "ref.f32"))
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    summary = json.loads((study / "e.json").read_text())
    ok = err <= 1e-5 and summary["explanation"]["sequences"] == names
    report(ok, f"{label}: seglrp explain on NIfTI channels (given in reverse order, matched by name) vs relevance on "
           f"nnU-Net's normalised tensor: max|ΔR|/max|R| {err:.1e}", f"{label}: explain")
    # Channels on different grids: the last one at half the in-plane resolution (voxel centres
    # between the fine ones) is resampled onto the first's grid, as `seglrp resample` does it
    # (checked against scipy in tests/nifti_parity.py), and said so.
    mixed = tmp / f"mixed-{label[:5]}"
    mixed.mkdir()
    coarse_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    coarse_affine[:2, 3] = 0.5
    coarse = mixed / files[-1].name
    nib.save(nib.Nifti1Image(raw[-1][:, ::2, ::2].transpose(2, 1, 0).copy(), coarse_affine), coarse)
    out = run("segment", *files[:-1], coarse, "--model", folder, "--out", mixed / "seg.nii.gz")
    run("resample", coarse, "--like", files[0], "--out", mixed / "moved.nii.gz")
    run("segment", *files[:-1], mixed / "moved.nii.gz", "--model", folder, "--out", mixed / "seg-moved.nii.gz")
    a, b = (np.asarray(nib.load(mixed / f).dataobj) for f in ("seg.nii.gz", "seg-moved.nii.gz"))
    ok = "resampled onto the grid of" in out.stderr and a.shape == nib.load(files[0]).shape and np.array_equal(a, b)
    report(ok, f"{label}: a channel on a coarser grid is resampled onto the finest ({out.stderr.strip()[:90]}…); "
           f"segmentation = the one on the file `seglrp resample` wrote", f"{label}: mixed grids")
    # --grid: the study on the coarse channel's grid instead; the fine channels move onto it.
    out = run("segment", *files[:-1], coarse, "--model", folder, "--grid", names[-1], "--out", mixed / "seg-c.nii.gz")
    moved = []
    for f in files[:-1]:
        moved.append(mixed / f"onto-coarse-{f.name}")
        run("resample", f, "--like", coarse, "--out", moved[-1])
    run("segment", *moved, coarse, "--model", folder, "--out", mixed / "seg-c-moved.nii.gz")
    a, b = (nib.load(mixed / f) for f in ("seg-c.nii.gz", "seg-c-moved.nii.gz"))
    ok = (a.shape == nib.load(coarse).shape and np.allclose(a.affine, coarse_affine)
          and np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and out.stderr.count("resampled onto") == cin - 1)
    report(ok, f"{label}: --grid {names[-1]}: the study on that channel's grid {a.shape}, the others resampled onto it; "
           f"segmentation = the one on the files `seglrp resample` wrote", f"{label}: --grid")
    if cin != 2:
        return
    # The cohort command on two such patients: the table's share columns are the model's
    # channels, and each row's shares are what `explain --region all` gives that patient.
    cohort = tmp / "cohort-nnunet"
    for i in (1, 2):
        (cohort / f"p{i}").mkdir(parents=True)
        for c, f in enumerate(files):
            data = raw[c] if i == 1 else raw[c][::-1].copy()
            nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), np.diag([1.0, 1.0, 2.0, 1.0])), cohort / f"p{i}" / f.name)
    run("cohort", cohort, "--model", folder, "--out", tmp / "cohort-out", "--class", 2, "--regions", "all",
        "--composite", "EpsilonPlus", "--jobs", 1)
    rows = (tmp / "cohort-out" / "cohort.csv").read_text().splitlines()
    header = rows[0].split(",")
    ok = header[7:9] == ["share_ct", "share_t1"] and len(rows) == 3
    for i, row in enumerate(rows[1:], start=1):
        cells = dict(zip(header, row.split(",")))
        e = json.loads(run("explain", *sorted((cohort / f"p{i}").iterdir()), "--model", folder, "--region", "all",
                           "--class", 2, "--composite", "EpsilonPlus").stdout)["explanation"]
        got = [float(cells["share_ct"]), float(cells["share_t1"])]
        same = e["shares"] is not None and np.allclose(got, e["shares"], rtol=1e-5, atol=1e-7)
        if not same:
            print(f"  patient {i}: table {got}, explain {e['shares']} ({e.get('voxels')} voxels vs {cells['voxels']})")
        ok = ok and same
    report(ok and (tmp / "cohort-out" / "parallel-all.png").is_file(),
           f"{label}: seglrp cohort --model: columns {header[7:9]}, shares equal explain's for both patients",
           f"{label}: cohort")
    # --predictor: nnU-Net's labels, and each row's shares are `explain --predictor --region all`'s.
    run("cohort", cohort, "--model", folder, "--out", tmp / "cohort-pred", "--class", 2, "--regions", "all",
        "--composite", "EpsilonPlus", "--jobs", 1, "--predictor")
    rows = (tmp / "cohort-pred" / "cohort.csv").read_text().splitlines()
    ok = len(rows) == 3
    for i, row in enumerate(rows[1:], start=1):
        cells = dict(zip(rows[0].split(","), row.split(",")))
        e = json.loads(run("explain", *sorted((cohort / f"p{i}").iterdir()), "--model", folder, "--predictor",
                           "--region", "all", "--class", 2, "--composite", "EpsilonPlus").stdout)["explanation"]
        got = [float(cells["share_ct"]), float(cells["share_t1"])]
        ok = ok and e["shares"] is not None and np.allclose(got, e["shares"], rtol=1e-5, atol=1e-7) \
            and int(cells["voxels"]) == e["voxels"]
    report(ok, f"{label}: seglrp cohort --predictor: shares equal explain --predictor --region all's for both patients",
           f"{label}: cohort --predictor")


def export_onnx(net, x, path, opset, dynamo):
    """`torch.onnx.export` with a fixed input shape."""
    net = copy.deepcopy(net).eval()
    kwargs = dict(input_names=["image"], output_names=["logits"], dynamo=dynamo)
    if opset is not None:
        kwargs["opset_version"] = opset
    torch.onnx.export(net, (x,), str(path), **kwargs)


def write_metadata(path, names, classes):
    """The channel and class names as a MONAI bundle's metadata states them."""
    path.write_text(json.dumps({"network_data_format": {
        "inputs": {"image": {"num_channels": len(names), "channel_def": {str(i): n for i, n in enumerate(names)}}},
        "outputs": {"pred": {"num_channels": len(classes), "channel_def": {str(i): c for i, c in enumerate(classes)}}}}}))


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    exports = []
    rng = np.random.default_rng(2026)
    for seed, (label, cls, cin, kwargs, shape) in enumerate(NETS, start=1):
        folder, net, names = model_folder(tmp, label, cls, cin, kwargs, seed)
        net.eval()
        x = rng.standard_normal(shape).astype(np.float32)
        x[0, :, :, : shape[3] // 3] = np.maximum(x[0, :, :, : shape[3] // 3], 0)
        diff = nnunet_loads(folder, net, torch.from_numpy(x)[None])
        report(diff == 0.0, f"{label}: nnUNetPredictor opens the folder, same network (max|Δ| {diff:.1e})", f"{label}: folder")
        card = json.loads(run("model", "info", folder, "--json").stdout)
        ok = (card["channels"][0]["normalisation"]["scheme"] == "Ct" and card["target_spacing"] == [1.0, 1.0, 2.0]
              and card["patch_size"] == [32, 32, 16] and card["inference"]["data"]["order"] == 3
              and card["inference"]["probabilities"]["order"] == 1 and card["inference"]["mirror_axes"] == [0, 1, 2])
        report(ok, f"{label}: the plans' normalisation, spacing, patch size, resampling and the checkpoint's mirroring "
               f"axes on the card", f"{label}: plans")
        if seed == 1:
            archive_check(label, folder, card)
        # The deep-supervision heads that inference does not use are not part of the graph.
        unused = sum(p.numel() for n, p in net.named_parameters()
                     if n.startswith("decoder.seg_layers.") and not n.startswith(f"decoder.seg_layers.{kwargs['n_stages'] - 2}."))
        params = sum(p.numel() for p in net.parameters()) - unused
        check(label, folder, net, names, list(CLASSES), x, "EpsilonPlus" if seed == 1 else "EpsilonGammaBox", params)
        exports.append((f"nnU-Net {label}", net, names, list(CLASSES), x, params))
        study_check(label, folder, net, names, x.shape, kwargs)
        predictor_check(label, folder, names)
        if seed == 1:
            predictor_explain_check(label, folder, net, names)
    for flat in (False, True):
        folder, net, names, classes = monai_folder(tmp, flat)
        net.eval()
        x = rng.standard_normal((2, 16, 32, 16)).astype(np.float32)
        label = "MONAI BasicUNet, " + ("network.json + model.safetensors" if flat else "bundle with model.pt")
        check(label, folder, net, names, classes, x, "EpsilonAlpha2Beta1", sum(p.numel() for p in net.parameters()))
    folder, net, names, classes = monai_folder(tmp, False, segresnet=True)
    net.eval()
    x = rng.standard_normal((2, 16, 24, 20)).astype(np.float32)
    check("MONAI SegResNet (group norm, residual sums, trilinear up-sampling)", folder, net, names, classes, x,
          "EpsilonGammaBox", sum(p.numel() for p in net.parameters()))
    exports.append(("MONAI SegResNet", net, names, classes, x, sum(p.numel() for p in net.parameters())))
    folder, net, names, classes = monai_folder(tmp, True, dynunet=True)
    net.eval()
    x = rng.standard_normal((2, 16, 24, 16)).astype(np.float32)
    check("MONAI DynUNet (residual blocks, anisotropic strides)", folder, net, names, classes, x, "EpsilonPlus",
          sum(p.numel() for p in net.parameters()))
    for res, region in ((2, "EpsilonGammaBox"), (0, "EpsilonPlusFlat")):
        folder, net, names, classes = monai_folder(tmp, res == 0, unet=res)
        net.eval()
        x = rng.standard_normal((2, 16, 24, 20)).astype(np.float32)
        label = f"MONAI UNet ({res} residual units, " + ("PReLU, instance norm)" if res else "LeakyReLU, 3x3x1 kernels)")
        check(label, folder, net, names, classes, x, region, sum(p.numel() for p in net.parameters()))
        if res:
            exports.append(("MONAI UNet (residual units, PReLU)", net, names, classes, x,
                            sum(p.numel() for p in net.parameters())))

    # ONNX exports by PyTorch's exporter (TorchScript-based at opsets 13 and 17; the dynamo-based
    # one at its default opset), with the names in a metadata.json beside the file.
    for i, (label, net, names, classes, x, params) in enumerate(exports):
        for opset, dynamo in [(13, False), (17, False)] if i == 0 else [(17, False), (None, True)] if i == 1 else [(13, False)]:
            path = tmp / f"onnx-{i}-{opset}-{dynamo}" / "model.onnx"
            path.parent.mkdir()
            export_onnx(net, torch.from_numpy(x)[None], path, opset, dynamo)
            write_metadata(path.parent / "metadata.json", names, classes)
            how = "dynamo exporter" if dynamo else f"opset {opset}"
            check(f"ONNX of {label} ({how})", path, net, names, classes, x, "EpsilonPlus", params)
    # An op outside the engine's list is refused, naming the node and its op.
    path = tmp / "tanh.onnx"
    export_onnx(nn.Sequential(nn.Conv3d(2, 3, 3, padding=1), nn.Tanh(), nn.Conv3d(3, 3, 1)), torch.zeros(1, 2, 8, 8, 8), path, 17, False)
    out = run("model", "info", path, check=False)
    report(out.returncode == 1 and "\"tanh1\" (Tanh) is not an operation SegLRP explains" in out.stderr and "panicked" not in out.stderr,
           f"an ONNX op outside the list is refused: {out.stderr.strip()[:160]}", "refusal (ONNX)")

    # A network the importer does not build is refused, naming it.
    folder = next(tmp.glob("Dataset002_Test/*"))
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = \
        "dynamic_network_architectures.architectures.primus.Primus"
    (folder / "plans.json").write_text(json.dumps(plans))
    out = run("model", "info", folder, check=False)
    report(out.returncode == 1 and "\"Primus\" is not supported" in out.stderr and "panicked" not in out.stderr,
           f"an unsupported network is refused: {out.stderr.strip()}", "refusal")
    folder = tmp / "monai-flat-BasicUNet"
    (folder / "network.json").write_text(json.dumps({"_target_": "SwinUNETR", "in_channels": 2, "out_channels": 3}))
    out = run("model", "info", folder, check=False)
    report(out.returncode == 1 and "\"SwinUNETR\" is not supported" in out.stderr and "panicked" not in out.stderr,
           f"an unsupported MONAI network is refused: {out.stderr.strip()}", "refusal (MONAI)")

if failures:
    print("FAILED:", *failures, sep="\n  ")
    sys.exit(1)
print("graph engine parity with PyTorch, nnU-Net, MONAI and Zennit: all checks passed")
