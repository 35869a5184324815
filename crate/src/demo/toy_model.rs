//! The toy model: an untrained network with a hand-set path, so that tests have a tumour it
//! finds and explains for a known reason.
//!
//! Random (seeded) weights, damped to a tenth, plus one planted feature that a radiologist
//! would use for a hypervascular liver tumour under Gd-EOB-DTPA: arterial enhancement
//! (T1 20 s) with a hepatobiliary defect (T1 15 min). The path runs through every layer type
//! of the skip connection: `e1[0] = ReLU(T1 20 s − T1 15 min)` at the centre tap,
//! `d[0] = ReLU(e1[0])`, and the tumour logit `= d[0] − THRESHOLD`. The demo uses the trained
//! bundled model instead.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::model::unet::{UNet, UNetConfig};

pub const MODEL_SEED: u64 = 2019;
const DAMPING: f32 = 0.1;
/// In z-score units of (T1 20 s − T1 15 min): the sample's tumour sits near 4, fat near 1.3.
const THRESHOLD: f32 = 2.5;

/// Applies `edit` to a parameter's values on the host and puts them back on its device.
fn edit<const D: usize>(p: &mut Param<Tensor<D>>, edit: impl FnOnce(&mut Vec<f32>, [usize; D])) {
    let t = p.val();
    let (dims, device) = (t.dims(), t.device());
    let mut v = t.into_data().try_into_vec::<f32>().expect("f32 weights");
    edit(&mut v, dims);
    *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, dims), &device));
}

/// Index of the centre tap of `[out, in, k, k, k]` weights.
fn centre(dims: [usize; 5], o: usize, i: usize) -> usize {
    let [_, cin, kd, kh, kw] = dims;
    (((o * cin + i) * kd + kd / 2) * kh + kh / 2) * kw + kw / 2
}

/// Built on the CPU, where weights can be read back synchronously (WebGPU cannot), then moved.
pub fn toy_model(device: &Device) -> UNet {
    let cpu = crate::backend::cpu_device("cpu").expect("a CPU backend is compiled in");
    let mut net = UNet::seeded(&UNetConfig::small(), MODEL_SEED, 0.05, &cpu);
    let damp = |v: &mut Vec<f32>| v.iter_mut().for_each(|x| *x *= DAMPING);
    edit(&mut net.encoder[0][0].conv.weight, |v, d| {
        damp(v);
        v[centre(d, 0, 2)] = 1.0;
        v[centre(d, 0, 5)] = -1.0;
    });
    edit(&mut net.decoder[0][0].conv.weight, |v, d| {
        damp(v);
        v[centre(d, 0, 0)] = 1.0;
    });
    edit(&mut net.head.weight, |v, d| {
        damp(v);
        v[centre(d, 1, 0)] = 1.0;
    });
    for b in [net.encoder[0][0].conv.bias.as_mut(), net.decoder[0][0].conv.bias.as_mut()].into_iter().flatten() {
        edit(b, |v, _| v[0] = 0.0);
    }
    edit(net.head.bias.as_mut().expect("head has a bias"), |v, _| v[1] = -THRESHOLD);
    net.to_device(device)
}
