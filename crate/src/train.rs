//! Training a U-Net on phantoms generated on the fly (burn autodiff, AdamW, class-weighted
//! cross-entropy). Used by the LRP sanity tests; the model issue builds `seglrp train` on it.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::phantom::phantom;
use crate::rng::SplitMix;
use crate::unet::{UNet, UNetConfig};
use crate::volume::Volume;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub steps: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// Phantom size `[nx, ny, nz]` of each training sample.
    pub dims: [usize; 3],
    pub seed: u64,
    /// Replace this sequence by pure noise in every sample (an LRP sanity check).
    pub noise_channel: Option<usize>,
    /// Weight of tumour voxels in the loss (tumours are a few % of a volume).
    pub tumour_weight: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 400,
            learning_rate: 3e-3,
            // Strong decoupled decay: weights that the data do not support (e.g. on a noise
            // sequence) shrink instead of keeping their random initial values.
            weight_decay: 2.0,
            dims: [32, 32, 8],
            seed: 1,
            noise_channel: None,
            tumour_weight: 5.0,
        }
    }
}

/// One training sample: the 6-sequence volume (raw intensities) and its tumour label.
pub fn sample(opts: &TrainOptions, index: u64) -> (Volume, Vec<u8>) {
    let seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(index);
    let mut p = phantom(opts.dims, seed);
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

/// Class-weighted cross-entropy of `logits` `[1, 2, D, H, W]` against `label` (file order).
fn loss(logits: Tensor<5>, label: &[u8], tumour_weight: f32) -> Tensor<1> {
    let dims = logits.dims();
    let n = label.len();
    let mut target = vec![0f32; 2 * n];
    let mut weight = vec![0f32; n];
    for (i, l) in label.iter().enumerate() {
        target[usize::from(*l) * n + i] = 1.0;
        weight[i] = if *l == 1 { tumour_weight } else { 1.0 };
    }
    let device = logits.device();
    let total: f32 = weight.iter().sum();
    let target = Tensor::<5>::from_data(TensorData::new(target, dims), &device);
    let weight = Tensor::<5>::from_data(TensorData::new(weight, [1, 1, dims[2], dims[3], dims[4]]), &device);
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    (log_p * target * weight).sum().neg() / total
}

/// Trains a network of `config` from seeded weights; `progress(step, loss)` after every step.
/// Returns the network on `device`, without autodiff.
pub fn train(config: &UNetConfig, opts: &TrainOptions, device: &Device, mut progress: impl FnMut(usize, f32)) -> UNet {
    let ad = device.clone().autodiff();
    let mut net = UNet::seeded(config, opts.seed, 0.0, &ad);
    let mut optim = AdamWConfig::new().with_weight_decay(opts.weight_decay).init();
    for step in 0..opts.steps {
        let (vol, label) = sample(opts, step as u64);
        let l = loss(net.forward(to_input(&vol.normalised().padded(config.align()), &ad)).narrow(2, 0, vol.dims[2]).narrow(3, 0, vol.dims[1]).narrow(4, 0, vol.dims[0]), &label, opts.tumour_weight);
        let value = l.clone().into_data().try_into_vec::<f32>().map(|v| v[0]).unwrap_or(f32::NAN);
        let grads = GradientsParams::from_grads(l.backward(), &net);
        net = optim.step(opts.learning_rate, net, grads);
        progress(step, value);
    }
    net.valid().to_device(device)
}

/// Dice of the predicted tumour against the label on one sample (raw intensities).
pub fn dice(net: &UNet, vol: &Volume, label: &[u8], device: &Device) -> f32 {
    let [nx, ny, nz] = vol.dims;
    let logits = net.forward(to_input(&vol.normalised().padded(net.config.align()), device)).narrow(2, 0, nz).narrow(3, 0, ny).narrow(4, 0, nx);
    let fg = logits.clone().narrow(1, 1, 1).greater(logits.narrow(1, 0, 1)).float();
    let pred = fg.into_data().try_into_vec::<f32>().expect("f32");
    let both = pred.iter().zip(label).filter(|(p, l)| **p > 0.5 && **l == 1).count() as f32;
    let sizes = pred.iter().filter(|p| **p > 0.5).count() as f32 + label.iter().filter(|l| **l == 1).count() as f32;
    if sizes == 0.0 { 1.0 } else { 2.0 * both / sizes }
}
