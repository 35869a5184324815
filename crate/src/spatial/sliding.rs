//! Sliding-window inference: volumes larger than what fits in one pass (or than the training
//! patch) are segmented patch by patch, overlapping, each patch's tumour probability
//! weighted by a Gaussian centred on it (as nnU-Net does), so that patch borders, where the
//! network sees zero padding instead of anatomy, count least.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::io::volume::Volume;
use crate::model::Graph;

/// Patch size `[nx, ny, nz]` and the fraction by which neighbouring patches overlap.
#[derive(Clone, Copy, Debug)]
pub struct Patches {
    pub size: [usize; 3],
    pub overlap: f32,
}

impl Default for Patches {
    /// Twice the training patch in-plane and in z; half-overlapping.
    fn default() -> Self {
        Patches { size: [128, 128, 32], overlap: 0.5 }
    }
}

/// Start positions of patches of `w` along an axis of `n` voxels (the last ends at `n`).
fn starts(n: usize, w: usize, overlap: f32) -> Vec<usize> {
    if n <= w {
        return vec![0];
    }
    let step = ((w as f32 * (1.0 - overlap)).floor() as usize).max(1);
    let mut v: Vec<usize> = (0..).map(|i| i * step).take_while(|s| s + w < n).collect();
    v.push(n - w);
    v
}

/// Per-axis Gaussian weights (σ = size / 8), normalised to a peak of 1.
fn gaussian(w: usize) -> Vec<f32> {
    let sigma = (w as f32 / 8.0).max(0.5);
    let c = (w as f32 - 1.0) / 2.0;
    (0..w).map(|i| (-0.5 * ((i as f32 - c) / sigma).powi(2)).exp().max(1e-3)).collect()
}

/// The sub-volume of `w` voxels starting at `o`; zero outside `vol`.
fn patch_of(vol: &Volume, o: [usize; 3], w: [usize; 3]) -> Vec<f32> {
    let [nx, ny, nz] = vol.dims;
    let n = vol.voxels();
    let mut out = vec![0f32; vol.channels * w[0] * w[1] * w[2]];
    for c in 0..vol.channels {
        for z in 0..w[2].min(nz.saturating_sub(o[2])) {
            for y in 0..w[1].min(ny.saturating_sub(o[1])) {
                let len = w[0].min(nx - o[0]);
                let src = c * n + (o[0] + nx * (o[1] + y + ny * (o[2] + z)));
                let dst = ((c * w[2] + z) * w[1] + y) * w[0];
                out[dst..dst + len].copy_from_slice(&vol.data[src..src + len]);
            }
        }
    }
    out
}

/// Tumour probability per voxel (file order) of a normalised volume, patch by patch;
/// `progress(done, total)` after each patch.
pub async fn tumour_probability(
    network: impl Into<Graph>,
    normalised: &Volume,
    patches: Patches,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<f32>, String> {
    let graph: Graph = network.into();
    let a = graph.alignment();
    let dims = normalised.dims;
    // A patch never exceeds the (aligned) volume, and is a multiple of the network's alignment.
    let w: [usize; 3] = std::array::from_fn(|i| (patches.size[i].div_ceil(a) * a).min(dims[i].div_ceil(a) * a).max(a));
    let per_axis: Vec<Vec<usize>> = (0..3).map(|i| starts(dims[i], w[i], patches.overlap)).collect();
    let g: Vec<Vec<f32>> = w.iter().map(|n| gaussian(*n)).collect();
    let n = normalised.voxels();
    let (mut acc, mut weight) = (vec![0f32; n], vec![0f32; n]);
    let total = per_axis.iter().map(Vec::len).product();
    let mut done = 0;
    for &oz in &per_axis[2] {
        for &oy in &per_axis[1] {
            for &ox in &per_axis[0] {
                let o = [ox, oy, oz];
                let x = Tensor::<5>::from_data(
                    TensorData::new(patch_of(normalised, o, w), [1, normalised.channels, w[2], w[1], w[0]]),
                    device,
                );
                let logits = graph.forward(x);
                let p = burn::tensor::activation::softmax(logits, 1).narrow(1, 1, 1);
                let p = crate::backend::read(p).await?;
                for z in 0..w[2].min(dims[2] - oz) {
                    for y in 0..w[1].min(dims[1] - oy) {
                        for x in 0..w[0].min(dims[0] - ox) {
                            let gw = g[0][x] * g[1][y] * g[2][z];
                            let i = (ox + x) + dims[0] * ((oy + y) + dims[1] * (oz + z));
                            acc[i] += gw * p[(z * w[1] + y) * w[0] + x];
                            weight[i] += gw;
                        }
                    }
                }
                done += 1;
                progress(done, total);
            }
        }
    }
    Ok(acc.iter().zip(&weight).map(|(a, w)| a / w).collect())
}

/// The tumour mask (probability > 0.5) of a raw study, patch by patch.
pub async fn segment(
    network: impl Into<Graph>,
    vol: &Volume,
    patches: Patches,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<u8>, String> {
    let p = tumour_probability(network, &vol.normalised(), patches, device, progress).await?;
    Ok(p.iter().map(|v| u8::from(*v > 0.5)).collect())
}
