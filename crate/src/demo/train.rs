//! Training a U-Net on phantoms generated on the fly (burn autodiff, AdamW, class-weighted
//! cross-entropy plus soft Dice, cosine learning-rate decay). `seglrp train` and the LRP
//! sanity tests use it.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::demo::phantom::{phantom, training_patch};
use crate::io::volume::Volume;
use crate::model::unet::{UNet, UNetConfig};
use crate::rng::SplitMix;

/// Where training samples come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Data {
    /// The toy phantom (`phantom::toy`): seconds of training, for tests.
    Toy,
    /// Patches of the liver phantoms (`phantom::anatomy`/`scanner`): the bundled model.
    Liver,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    pub data: Data,
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate; with `cosine`, it decays along a cosine to 5 % of it.
    pub learning_rate: f64,
    pub cosine: bool,
    pub weight_decay: f32,
    /// Size `[nx, ny, nz]` of each training sample.
    pub dims: [usize; 3],
    /// Seeds the weights and the sample stream.
    pub seed: u64,
    /// Replace this sequence by pure noise in every sample (an LRP sanity check).
    pub noise_channel: Option<usize>,
    /// Weight of tumour voxels in the cross-entropy (tumours are a few % of a volume).
    pub tumour_weight: f32,
    /// Weight of the soft-Dice term (0: cross-entropy only).
    pub dice_weight: f32,
}

impl Default for TrainOptions {
    /// The sanity tests' quick run on toy phantoms.
    fn default() -> Self {
        TrainOptions {
            data: Data::Toy,
            steps: 400,
            batch: 1,
            learning_rate: 3e-3,
            cosine: false,
            // Strong decoupled decay: weights that the data do not support (e.g. on a noise
            // sequence) shrink instead of keeping their random initial values.
            weight_decay: 2.0,
            dims: [32, 32, 8],
            seed: 1,
            noise_channel: None,
            tumour_weight: 5.0,
            dice_weight: 0.0,
        }
    }
}

impl TrainOptions {
    /// How the bundled model is trained (`seglrp train` defaults).
    pub fn bundled() -> TrainOptions {
        TrainOptions {
            data: Data::Liver,
            steps: 2400,
            batch: 2,
            learning_rate: 2e-3,
            cosine: true,
            weight_decay: 1e-4,
            dims: [64, 64, 16],
            seed: 1,
            noise_channel: None,
            tumour_weight: 3.0,
            dice_weight: 1.0,
        }
    }
}

/// The bundled model's architecture: three levels, 8/16/32 channels, two conv-ReLU blocks per
/// level and side, no norm (so sliding windows and whole volumes agree), max-pooling,
/// transposed-conv up.
pub fn bundled_config() -> UNetConfig {
    UNetConfig { levels: 3, base_channels: 8, blocks: 2, ..UNetConfig::small() }
}

/// One training sample: the 6-sequence volume (raw intensities) and its tumour label.
pub fn sample(opts: &TrainOptions, index: u64) -> (Volume, Vec<u8>) {
    // Training seeds stay far below the held-out cohort's (`phantom::COHORT_SEED_BASE`).
    let seed = (opts.seed.wrapping_mul(1_000_003).wrapping_add(index)) % (1 << 39);
    let mut p = match opts.data {
        Data::Toy => phantom(opts.dims, seed),
        Data::Liver => training_patch(seed, opts.dims),
    };
    if let Some(c) = opts.noise_channel {
        let mut rng = SplitMix::new(seed ^ 0x9e37_79b9);
        let n = p.volume.voxels();
        for v in &mut p.volume.data[c * n..(c + 1) * n] {
            *v = 1.0 + 150.0 * (rng.symmetric(0.5) + 0.5);
        }
    }
    (p.volume, p.label)
}

fn to_input(vol: &Volume, device: &Device) -> Tensor<5> {
    let [nx, ny, nz] = vol.dims;
    Tensor::from_data(TensorData::new(vol.data.clone(), [1, vol.channels, nz, ny, nx]), device)
}

/// Class-weighted cross-entropy plus `dice_weight` × (1 − soft Dice of the tumour class), of
/// `logits` `[B, 2, D, H, W]` against `labels` (file order, one per batch item).
fn loss(logits: Tensor<5>, labels: &[Vec<u8>], opts: &TrainOptions) -> Tensor<1> {
    let dims = logits.dims();
    let [b, classes, d, h, w] = dims;
    let n = d * h * w;
    let mut target = vec![0f32; b * classes * n];
    let mut weight = vec![0f32; b * n];
    for (k, label) in labels.iter().enumerate() {
        for (i, l) in label.iter().enumerate() {
            target[(k * classes + usize::from(*l)) * n + i] = 1.0;
            weight[k * n + i] = if *l == 1 { opts.tumour_weight } else { 1.0 };
        }
    }
    let device = logits.device();
    let total: f32 = weight.iter().sum();
    let target = Tensor::<5>::from_data(TensorData::new(target, dims), &device);
    let weight = Tensor::<5>::from_data(TensorData::new(weight, [b, 1, d, h, w]), &device);
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let ce = (log_p.clone() * target.clone() * weight).sum().neg() / total;
    if opts.dice_weight == 0.0 {
        return ce;
    }
    let p = log_p.narrow(1, 1, 1).exp();
    let g = target.narrow(1, 1, 1);
    let dice = (p.clone() * g.clone()).sum().mul_scalar(2.0).add_scalar(1.0) / (p.sum() + g.sum()).add_scalar(1.0);
    ce + dice.neg().add_scalar(1.0).mul_scalar(opts.dice_weight)
}

/// Learning rate at `step`: constant, or a cosine from the peak down to 5 % of it.
fn learning_rate(opts: &TrainOptions, step: usize) -> f64 {
    if !opts.cosine {
        return opts.learning_rate;
    }
    let t = step as f64 / opts.steps.max(1) as f64;
    opts.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Trains a network of `config` from seeded weights; `progress(step, loss, net)` after every
/// step (the net lets callers write checkpoints). Returns the network on `device`, without
/// autodiff.
pub fn train(
    config: &UNetConfig,
    opts: &TrainOptions,
    device: &Device,
    mut progress: impl FnMut(usize, f32, &dyn Fn() -> UNet),
) -> UNet {
    let ad = device.clone().autodiff();
    let mut net = UNet::seeded(config, opts.seed, 0.0, &ad);
    let mut optim = AdamWConfig::new().with_weight_decay(opts.weight_decay).init();
    for step in 0..opts.steps {
        let (inputs, labels): (Vec<Tensor<5>>, Vec<Vec<u8>>) = (0..opts.batch)
            .map(|k| {
                let (vol, label) = sample(opts, (step * opts.batch + k) as u64);
                assert_eq!(
                    vol.dims.map(|d| d % config.align()),
                    [0; 3],
                    "training patches must be multiples of {}",
                    config.align()
                );
                (to_input(&vol.normalised(), &ad), label)
            })
            .unzip();
        let l = loss(net.forward(Tensor::cat(inputs, 0)), &labels, opts);
        let value = l.clone().into_data().try_into_vec::<f32>().map(|v| v[0]).unwrap_or(f32::NAN);
        let grads = GradientsParams::from_grads(l.backward(), &net);
        net = optim.step(learning_rate(opts, step), net, grads);
        let snapshot = || net.valid().to_device(device);
        progress(step, value, &snapshot);
    }
    net.valid().to_device(device)
}

/// Dice of the predicted tumour against the label on one sample (raw intensities).
pub fn dice(net: &UNet, vol: &Volume, label: &[u8], device: &Device) -> f32 {
    let [nx, ny, nz] = vol.dims;
    let logits = net
        .forward(to_input(&vol.normalised().padded(net.config.align()), device))
        .narrow(2, 0, nz)
        .narrow(3, 0, ny)
        .narrow(4, 0, nx);
    let fg = logits.clone().narrow(1, 1, 1).greater(logits.narrow(1, 0, 1)).float();
    let pred: Vec<u8> = fg.into_data().try_into_vec::<f32>().expect("f32").iter().map(|v| u8::from(*v > 0.5)).collect();
    crate::spatial::metrics::dice(&pred, label).unwrap_or(1.0)
}
