//! Sliding-window inference as nnU-Net's predictor runs it (`predict_sliding_window_return_logits`):
//! a volume smaller than the patch is padded to it (zeros, centred), patches start where
//! nnU-Net's `compute_steps_for_sliding_window` puts them (step = half a patch by default,
//! spread evenly so the last patch ends at the border), and each patch's logits are weighted by
//! nnU-Net's Gaussian importance map (σ = patch / 8, peak 10) and averaged by the summed weights.
//!
//! nnU-Net accumulates in half precision (float16 logits and weights); the labels come from those
//! numbers, so [`Blended::half`] keeps them to give nnU-Net's labels voxel for voxel. LRP explains
//! [`Blended::logits`], the same blend in single precision: a weighted mean of the patches'
//! logits, linear in each patch's logit (README "Method").

use burn::prelude::*;
use burn::tensor::TensorData;
use half::f16;

use crate::io::volume::Volume;
use crate::model::Graph;

/// Patch size and step, `[x, y, z]` voxels (nnU-Net's `patch_size` is `[z, y, x]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Patches {
    pub size: [usize; 3],
    /// Step between patch starts as a fraction of the patch (nnU-Net's `tile_step_size`).
    pub step: f64,
}

impl Patches {
    /// nnU-Net's default: half-overlapping patches of `size`.
    pub fn new(size: [usize; 3]) -> Patches {
        Patches { size, step: 0.5 }
    }
}

impl Default for Patches {
    /// For the liver models: twice their training patch in-plane and in z.
    fn default() -> Self {
        Patches::new([128, 128, 32])
    }
}

/// nnU-Net's `compute_steps_for_sliding_window` on one axis of `n` (≥ `w`) voxels.
pub fn steps(n: usize, w: usize, step: f64) -> Vec<usize> {
    let target = w as f64 * step;
    let count = ((n - w) as f64 / target).ceil() as usize + 1;
    let actual = if count > 1 { (n - w) as f64 / (count - 1) as f64 } else { 0.0 };
    (0..count).map(|i| (actual * i as f64).round_ties_even() as usize).collect()
}

/// One axis of nnU-Net's Gaussian: scipy's `gaussian_filter` (σ = w/8, truncated at 4σ) of a
/// unit impulse at `w / 2`.
fn gaussian_axis(w: usize) -> Vec<f64> {
    let sigma = w as f64 / 8.0;
    let radius = (4.0 * sigma + 0.5) as isize;
    let phi: Vec<f64> = (-radius..=radius).map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp()).collect();
    let sum: f64 = phi.iter().sum();
    let c = (w / 2) as isize;
    (0..w as isize).map(|i| if (i - c).abs() <= radius { phi[(i - c + radius) as usize] / sum } else { 0.0 }).collect()
}

/// nnU-Net's `compute_gaussian(patch, 1/8, value_scaling_factor=10)` in float16, `[z][y][x]`
/// (x fastest), as f32.
pub fn gaussian(size: [usize; 3]) -> Vec<f32> {
    let [gx, gy, gz] = [gaussian_axis(size[0]), gaussian_axis(size[1]), gaussian_axis(size[2])];
    let max = gz[size[2] / 2] * gy[size[1] / 2] * gx[size[0] / 2];
    let mut g = Vec::with_capacity(size.iter().product());
    for z in &gz {
        for y in &gy {
            for x in &gx {
                g.push(f16::from_f64(z * y * x / (max / 10.0)));
            }
        }
    }
    // A weight of 0 would divide by 0 where only borders overlap: nnU-Net lifts those.
    let min = g.iter().copied().filter(|v| v.to_f32() > 0.0).fold(f16::MAX, f16::min);
    g.iter().map(|v| if v.to_f32() > 0.0 { v.to_f32() } else { min.to_f32() }).collect()
}

/// The blended logits of a volume, `[class][z][y][x]` on its grid.
pub struct Blended {
    /// As nnU-Net holds them (float16 sums and quotient), as f32: what its labels come from.
    pub half: Vec<f32>,
    /// The same weighted mean in f32: what LRP explains.
    pub logits: Vec<f32>,
    pub classes: usize,
    /// Patch origins on the padded grid `[x, y, z]`, and the padding below the volume.
    pub origins: Vec<[usize; 3]>,
    pub pad: [usize; 3],
}

/// The label of each voxel: the first class of the highest logit (numpy's and torch's argmax).
pub fn argmax(logits: &[f32], classes: usize) -> Vec<u8> {
    let n = logits.len() / classes.max(1);
    (0..n)
        .map(|i| {
            let mut best = 0;
            for k in 1..classes {
                if logits[k * n + i] > logits[best * n + i] {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

/// The sub-volume of `w` voxels at `o` of `data` (`channels` × `dims`).
pub(crate) fn patch_of(data: &[f32], channels: usize, dims: [usize; 3], o: [usize; 3], w: [usize; 3]) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let n = nx * ny * nz;
    let mut out = Vec::with_capacity(channels * w.iter().product::<usize>());
    for c in 0..channels {
        for z in 0..w[2] {
            for y in 0..w[1] {
                let src = c * n + o[0] + nx * (o[1] + y + ny * (o[2] + z));
                out.extend_from_slice(&data[src..src + w[0]]);
            }
        }
    }
    out
}

/// Pads `vol` with zeros to at least `size` per axis, as nnU-Net's `pad_nd_image` (half below,
/// the rest above); returns the data, its dims and the padding below.
pub(crate) fn pad_to(vol: &Volume, size: [usize; 3]) -> (Vec<f32>, [usize; 3], [usize; 3]) {
    let dims: [usize; 3] = std::array::from_fn(|i| vol.dims[i].max(size[i]));
    if dims == vol.dims {
        return (vol.data.clone(), dims, [0; 3]);
    }
    let below: [usize; 3] = std::array::from_fn(|i| (dims[i] - vol.dims[i]) / 2);
    let [nx, ny, nz] = vol.dims;
    let mut out = vec![0f32; vol.channels * dims.iter().product::<usize>()];
    for c in 0..vol.channels {
        for z in 0..nz {
            for y in 0..ny {
                let src = ((c * nz + z) * ny + y) * nx;
                let dst = below[0] + dims[0] * (below[1] + y + dims[1] * (below[2] + z + dims[2] * c));
                out[dst..dst + nx].copy_from_slice(&vol.data[src..src + nx]);
            }
        }
    }
    (out, dims, below)
}

/// Patch origins `[x, y, z]` on a (padded) grid of `dims`, in nnU-Net's order (z outermost:
/// its half-precision sums depend on the order).
pub fn origins(dims: [usize; 3], patches: Patches) -> Vec<[usize; 3]> {
    let per_axis: Vec<Vec<usize>> = (0..3).map(|i| steps(dims[i], patches.size[i], patches.step)).collect();
    let mut all = Vec::new();
    for &oz in &per_axis[2] {
        for &oy in &per_axis[1] {
            for &ox in &per_axis[0] {
                all.push([ox, oy, oz]);
            }
        }
    }
    all
}

/// Every non-empty combination of `axes`, by size, then in order (Python's
/// `itertools.combinations`, as nnU-Net enumerates its mirrorings).
pub(crate) fn combinations(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = (1..1usize << axes.len())
        .map(|bits| (0..axes.len()).filter(|i| bits >> i & 1 == 1).map(|i| axes[i]).collect())
        .collect();
    all.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    all
}

/// The logits of one patch `x` (`[1, C, z, y, x]`), averaged over its mirrorings along
/// `mirror` (0 = z, 1 = y, 2 = x) as nnU-Net's test-time augmentation does.
fn mirrored(graph: &Graph, x: Tensor<5>, mirror: &[usize]) -> Tensor<5> {
    let flip = |t: Tensor<5>, axes: &[usize]| axes.iter().fold(t, |t, a| t.flip([a + 2]));
    let sets = combinations(mirror);
    let mut sum = graph.forward(x.clone());
    for axes in &sets {
        sum = sum + flip(graph.forward(flip(x.clone(), axes)), axes);
    }
    if sets.is_empty() {
        sum
    } else {
        sum / (sets.len() + 1) as f32
    }
}

/// The network's logits over `input` (already normalised), patch by patch, each patch averaged
/// over its mirrorings along `mirror` (empty: none); `progress(done, total)` after each patch.
pub async fn blend(
    graph: &Graph,
    input: &Volume,
    patches: Patches,
    mirror: &[usize],
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Blended, String> {
    let w = patches.size;
    let a = graph.align();
    if (0..3).any(|i| w[i] % a[2 - i] != 0) {
        return Err(format!(
            "the patch {}×{}×{} is not a multiple of what the network's sides must be ({}×{}×{})",
            w[0], w[1], w[2], a[2], a[1], a[0]
        ));
    }
    let (data, dims, pad) = pad_to(input, w);
    let origins = origins(dims, patches);
    let total = origins.len();
    let g = gaussian(w);
    let k = graph.classes;
    let n: usize = dims.iter().product();
    let (mut acc, mut weight) = (vec![f16::ZERO; k * n], vec![f16::ZERO; n]);
    let (mut acc32, mut weight32) = (vec![0f32; k * n], vec![0f32; n]);
    let wn: usize = w.iter().product();
    for (done, &o) in origins.iter().enumerate() {
        let x = Tensor::<5>::from_data(
            TensorData::new(patch_of(&data, input.channels, dims, o, w), [1, input.channels, w[2], w[1], w[0]]),
            device,
        );
        let p = crate::backend::read(mirrored(graph, x, mirror)).await?;
        for z in 0..w[2] {
            for y in 0..w[1] {
                for x in 0..w[0] {
                    let j = x + w[0] * (y + w[1] * z);
                    let i = (o[0] + x) + dims[0] * ((o[1] + y) + dims[1] * (o[2] + z));
                    for c in 0..k {
                        let v = p[c * wn + j] * g[j];
                        acc[c * n + i] = f16::from_f32(acc[c * n + i].to_f32() + v);
                        acc32[c * n + i] += v;
                    }
                    weight[i] = f16::from_f32(weight[i].to_f32() + g[j]);
                    weight32[i] += g[j];
                }
            }
        }
        progress(done + 1, total);
    }
    // Back to the volume's grid, without the padding.
    let mut half = Vec::with_capacity(k * input.voxels());
    let mut logits = Vec::with_capacity(k * input.voxels());
    let [nx, ny, nz] = input.dims;
    for c in 0..k {
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let i = (pad[0] + x) + dims[0] * ((pad[1] + y) + dims[1] * (pad[2] + z));
                    half.push(f16::from_f32(acc[c * n + i].to_f32() / weight[i].to_f32()).to_f32());
                    logits.push(acc32[c * n + i] / weight32[i]);
                }
            }
        }
    }
    Ok(Blended { half, logits, classes: k, origins, pad })
}

/// The label of each voxel of a raw liver study (normalised here), patch by patch, from the
/// single-precision blend (nnU-Net's float16 sums matter only where nnU-Net's labels are the
/// reference: spatial/predictor.rs).
pub async fn segment(
    network: impl Into<Graph>,
    vol: &Volume,
    patches: Patches,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<u8>, String> {
    let graph: Graph = network.into();
    let b = blend(&graph, &vol.normalised(), patches, &[], device, progress).await?;
    Ok(argmax(&b.logits, b.classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_spread_evenly_and_end_at_the_border() {
        // nnU-Net's own example: 110 voxels, patch 64, step 0.5 → 0, 23, 46.
        assert_eq!(steps(110, 64, 0.5), vec![0, 23, 46]);
        assert_eq!(steps(64, 64, 0.5), vec![0]);
        assert_eq!(steps(100, 32, 0.5), vec![0, 14, 27, 41, 54, 68]);
    }

    #[test]
    fn mirrorings_are_enumerated_as_itertools_does() {
        let got = combinations(&[0, 1, 2]);
        let want: Vec<Vec<usize>> = vec![vec![0], vec![1], vec![2], vec![0, 1], vec![0, 2], vec![1, 2], vec![0, 1, 2]];
        assert_eq!(got, want);
        assert!(combinations(&[]).is_empty());
    }

    #[test]
    fn the_gaussian_peaks_at_ten_in_the_centre_and_never_vanishes() {
        let g = gaussian([8, 8, 4]);
        let centre = 4 + 8 * (4 + 8 * 2);
        assert_eq!(g[centre], 10.0);
        assert!(g.iter().all(|v| *v > 0.0 && *v <= 10.0));
        assert!(g[0] < g[centre] / 100.0);
    }
}
