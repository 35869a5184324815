//! The skeleton's 3D U-Net: two resolution levels, after Çiçek et al. (2016).
//!
//! ```text
//! x [6] ─ conv3 ─ ReLU ─ e1 [8] ───────────────────────────── concat [16] ─ conv3 ─ ReLU ─ d [8] ─ conv1 ─ logits [2]
//!                          └─ maxpool 2 ─ p [8] ─ conv3 ─ ReLU ─ b [16] ─ upconv 2 ─ u [8] ─┘
//! ```
//! The forward pass keeps every activation, because LRP needs the input of each layer.

use burn::module::Param;
use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::pool::max_pool3d;
use crate::rng::SplitMix;

pub const IN_CHANNELS: usize = 6;
pub const CLASSES: usize = 2;
/// Input sides must be multiples of this (one 2×2×2 pooling level).
pub const ALIGN: usize = 2;

#[derive(Module, Debug)]
pub struct UNet {
    pub enc1: Conv3d,
    pub enc2: Conv3d,
    pub up: ConvTranspose3d,
    pub dec: Conv3d,
    pub head: Conv3d,
}

/// Every intermediate the LRP pass reads, named as in the module docs.
#[derive(Clone, Debug)]
pub struct Activations {
    pub x: Tensor<5>,
    pub e1: Tensor<5>,
    pub p: Tensor<5>,
    pub b: Tensor<5>,
    pub u: Tensor<5>,
    pub cat: Tensor<5>,
    pub d: Tensor<5>,
    pub logits: Tensor<5>,
}

fn he_uniform(rng: &mut SplitMix, shape: [usize; 5], fan_in: usize, device: &Device) -> Tensor<5> {
    let a = (6.0 / fan_in as f32).sqrt();
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.symmetric(a)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn bias(rng: &mut SplitMix, n: usize, scale: f32, device: &Device) -> Param<Tensor<1>> {
    let v: Vec<f32> = (0..n).map(|_| rng.symmetric(scale)).collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(v, [n]), device))
}

fn conv(rng: &mut SplitMix, cin: usize, cout: usize, k: usize, bias_scale: f32, device: &Device) -> Conv3d {
    Conv3d {
        weight: Param::from_tensor(he_uniform(rng, [cout, cin, k, k, k], cin * k * k * k, device)),
        bias: Some(bias(rng, cout, bias_scale, device)),
        stride: [1; 3],
        kernel_size: [k; 3],
        dilation: [1; 3],
        groups: 1,
        padding: PaddingConfig3d::Explicit(k / 2, k / 2, k / 2),
    }
}

impl UNet {
    /// Deterministic weights from `seed` (identical on every platform and backend).
    /// `bias_scale = 0` gives a bias-free net, for which LRP-ε conserves relevance exactly.
    pub fn seeded(seed: u64, bias_scale: f32, device: &Device) -> Self {
        let mut rng = SplitMix::new(seed);
        let enc1 = conv(&mut rng, IN_CHANNELS, 8, 3, bias_scale, device);
        let enc2 = conv(&mut rng, 8, 16, 3, bias_scale, device);
        let up = ConvTranspose3d {
            // burn/PyTorch layout for transposed convs: [in, out, k, k, k]
            weight: Param::from_tensor(he_uniform(&mut rng, [16, 8, 2, 2, 2], 16, device)),
            bias: Some(bias(&mut rng, 8, bias_scale, device)),
            stride: [2; 3],
            kernel_size: [2; 3],
            dilation: [1; 3],
            groups: 1,
            padding: [0; 3],
            padding_out: [0; 3],
            channels: [16, 8],
        };
        let dec = conv(&mut rng, 16, 8, 3, bias_scale, device);
        let head = conv(&mut rng, 8, CLASSES, 1, bias_scale, device);
        Self { enc1, enc2, up, dec, head }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.forward_all(x).logits
    }

    pub fn forward_all(&self, x: Tensor<5>) -> Activations {
        let [_, c, d, h, w] = x.dims();
        assert_eq!(c, IN_CHANNELS, "the model takes {IN_CHANNELS} sequences");
        assert!(d % ALIGN == 0 && h % ALIGN == 0 && w % ALIGN == 0, "pad the volume to a multiple of {ALIGN}");
        let e1 = relu(self.enc1.forward(x.clone()));
        let p = max_pool3d(e1.clone());
        let b = relu(self.enc2.forward(p.clone()));
        let u = self.up.forward(b.clone());
        let cat = Tensor::cat(vec![e1.clone(), u.clone()], 1);
        let d = relu(self.dec.forward(cat.clone()));
        let logits = self.head.forward(d.clone());
        Activations { x, e1, p, b, u, cat, d, logits }
    }
}

fn relu(x: Tensor<5>) -> Tensor<5> {
    burn::tensor::activation::relu(x)
}
