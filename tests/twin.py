"""The PyTorch twin of SegLRP's U-Net (crate/src/model/unet.rs): same architecture, same parameter
names, so that `model.load_state_dict(load_safetensors(path))` takes SegLRP's weights and a
state_dict saved from this module loads into SegLRP.

Module registration order matters to Zennit: the encoder comes first (its first conv is the
"first layer" of the Box/Flat composites) and every block registers conv, norm, ReLU in that
order (SequentialMergeBatchNorm merges a norm that directly follows a conv).
"""
import json
import struct

import numpy as np
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, kernel, stride, norm, eps, activation):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0)
        if norm == "batch":
            self.norm = nn.BatchNorm3d(cout, eps=eps)
        elif norm == "instance":
            self.norm = nn.InstanceNorm3d(cout, eps=eps, affine=True)
        else:
            self.norm = None
        self.relu = nn.LeakyReLU(0.01) if activation == "leaky_relu" else nn.ReLU()

    def forward(self, x):
        z = self.conv(x)
        if self.norm is not None:
            z = self.norm(z)
        return self.relu(z)


class UNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        levels, blocks, norm, eps = config["levels"], config["blocks"], config["norm"], config.get("norm_eps", 1e-5)
        act, up = config.get("activation", "relu"), config.get("up", "transposed_conv")
        c = lambda level: config["base_channels"] << level
        self.encoder = nn.ModuleList()
        for level in range(levels):
            seq = []
            cin = config["in_channels"] if level == 0 else c(level - 1)
            if level > 0 and config["down"] == "strided_conv":
                seq.append(Block(cin, cin, 2, 2, norm, eps, act))
            for _ in range(blocks):
                seq.append(Block(cin, c(level), 3, 1, norm, eps, act))
                cin = c(level)
            self.encoder.append(nn.ModuleList(seq))
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(levels - 1)):
            if up == "transposed_conv":
                self.ups.append(nn.ConvTranspose3d(c(level + 1), c(level), 2, stride=2))
            else:
                mode = "trilinear" if up == "trilinear" else "nearest"
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), nn.Conv3d(c(level + 1), c(level), 1)))
            seq, cin = [], 2 * c(level)
            for _ in range(blocks):
                seq.append(Block(cin, c(level), 3, 1, norm, eps, act))
                cin = c(level)
            self.decoder.append(nn.ModuleList(seq))
        self.head = nn.Conv3d(c(0), config["classes"], 1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x):
        levels = self.config["levels"]
        skips, h = [], x
        for level, blocks in enumerate(self.encoder):
            if level > 0 and self.config["down"] == "max_pool":
                h = self.pool(h)
            for block in blocks:
                h = block(h)
            skips.append(h)
        for i, (up, blocks) in enumerate(zip(self.ups, self.decoder)):
            h = torch.cat([skips[levels - 2 - i], up(h)], dim=1)
            for block in blocks:
                h = block(h)
        return self.head(h)


def load_safetensors(path):
    """(tensors, metadata) from a safetensors file, read with the standard library and numpy."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]).copy())
    return tensors, meta


def load(path, config=None):
    tensors, meta = load_safetensors(path)
    config = config or json.loads(meta["config"])
    model = UNet(config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"missing {missing}, unexpected {unexpected}")
    return model.eval(), config


def freeze_instance_norms(model, x):
    """Replaces every InstanceNorm3d by the BatchNorm3d that computes the same on `x` (batch 1):
    running statistics = the current input's per-channel statistics. This is SegLRP's
    instance-norm canonization, expressed so that Zennit's SequentialMergeBatchNorm merges it."""
    stats, hooks = {}, []
    for module in model.modules():
        if isinstance(module, Block) and isinstance(module.norm, nn.InstanceNorm3d):
            def hook(mod, inputs, output, key=module):
                z = output.detach()
                stats[key] = (z.mean(dim=(0, 2, 3, 4)), z.var(dim=(0, 2, 3, 4), unbiased=False))
            hooks.append(module.conv.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for block, (mean, var) in stats.items():
        inorm = block.norm
        bn = nn.BatchNorm3d(inorm.num_features, eps=inorm.eps).eval()
        with torch.no_grad():
            bn.weight.copy_(inorm.weight)
            bn.bias.copy_(inorm.bias)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        block.norm = bn
    return model
