//! The path from a loaded volume to a segmentation and to relevance maps, with the host
//! read-backs the browser and the command line share. Read-backs are async because WebGPU
//! cannot block the browser's thread; native callers wrap them in `pollster::block_on`.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Serialize;

use crate::lrp::{explain_voxel, Composite};
use crate::unet::{Activations, UNet};
use crate::volume::Volume;

pub use crate::skeleton::skeleton_model;

/// The composite the page and the CLI use unless told otherwise (the skeleton's LRP-ε).
pub const DEFAULT_COMPOSITE: &str = "Epsilon";

/// A study on the device, normalised and padded for the network, with the forward pass done.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Size of the original volume `[nx, ny, nz]`; outputs are cropped back to it.
    pub dims: [usize; 3],
    pub acts: Activations,
    /// Per channel, the lowest and highest value of the normalised input: ZBox's bounds.
    pub low: Vec<f32>,
    pub high: Vec<f32>,
    /// Propagate only through the explained voxels' receptive field (crop.rs; on by default,
    /// off to measure what it saves).
    pub crop: bool,
}

pub fn prepare(net: &UNet, vol: &Volume, device: &Device) -> Result<Prepared, String> {
    check_channels(net, vol)?;
    prepare_normalised(net, &vol.normalised(), device)
}

fn check_channels(net: &UNet, vol: &Volume) -> Result<(), String> {
    let channels = net.config.in_channels;
    if vol.channels != channels {
        return Err(format!(
            "the model needs {channels} sequences (T2, T1 plain, T1 20 s, 60 s, 120 s, 15 min); this study has {}",
            vol.channels
        ));
    }
    Ok(())
}

/// As [`prepare`] for a volume that is already what the network reads (no normalisation):
/// for checks against other implementations on raw tensors.
pub fn prepare_normalised(net: &UNet, vol: &Volume, device: &Device) -> Result<Prepared, String> {
    check_channels(net, vol)?;
    let channels = vol.channels;
    let padded = vol.padded(net.config.align());
    let [nx, ny, nz] = padded.dims;
    let n = padded.voxels();
    let range = |c: usize| padded.data[c * n..(c + 1) * n].iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let (low, high) = (0..channels).map(range).unzip();
    let x = Tensor::<5>::from_data(TensorData::new(padded.data, [1, channels, nz, ny, nx]), device);
    Ok(Prepared { dims: vol.dims, acts: net.forward_all(x), low, high, crop: true })
}

/// The composite called `name` (Zennit's names, plus "Epsilon"), with ZBox bounds from the
/// study; or, when `name` is JSON (`{"composite": "Custom", "default": {"rule": "epsilon",
/// "epsilon": 1e-6}, "layers": [["head", {"rule": "z_plus", "stabilizer": 1e-6}]]}`), that
/// composite.
pub fn composite(name: &str, p: &Prepared) -> Result<Composite, String> {
    if name.trim_start().starts_with('{') {
        let c: Composite = serde_json::from_str(name).map_err(|e| format!("the composite JSON is not usable: {e}"))?;
        if let Composite::Custom { default, layers } = &c {
            for rule in std::iter::once(default).chain(layers.iter().map(|(_, r)| r)) {
                rule.validate(p.low.len())?;
            }
        }
        return Ok(c);
    }
    match Composite::by_name(name) {
        Some(Composite::EpsilonGammaBox { .. }) => Ok(Composite::EpsilonGammaBox { low: p.low.clone(), high: p.high.clone() }),
        Some(c) => Ok(c),
        None => Err(format!("unknown composite \"{name}\"; choose one of {} or give a JSON file", Composite::NAMES.join(", "))),
    }
}

pub(crate) async fn read(t: Tensor<5>) -> Result<Vec<f32>, String> {
    let data = t.into_data_async().await.map_err(|e| format!("reading back from the device failed: {e:?}"))?;
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// Crops a `[channels, z, y, x]` host buffer of the padded grid back to `dims`.
pub fn crop(data: Vec<f32>, channels: usize, padded: [usize; 5], dims: [usize; 3]) -> Vec<f32> {
    let [_, _, pz, py, px] = padded;
    Volume { dims: [px, py, pz], channels, spacing: [1.0; 3], affine: crate::geometry::Affine::diagonal([1.0; 3]), data }.cropped(dims).data
}

/// Predicted class per voxel (argmax of the two logits; ties go to background), file order.
pub async fn segmentation(p: &Prepared) -> Result<Vec<u8>, String> {
    let logits = p.acts.logits.clone();
    let fg = logits.clone().narrow(1, 1, 1).greater(logits.narrow(1, 0, 1)).float();
    let dims = fg.dims();
    Ok(crop(read(fg).await?, 1, dims, p.dims).into_iter().map(|v| v as u8).collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct VoxelExplanation {
    /// NIfTI voxel `[x, y, z]` that was explained.
    pub voxel: [usize; 3],
    pub class: usize,
    /// Relevance per input voxel, 6 channels in file order (`[c][z][y][x]`).
    #[serde(skip)]
    pub relevance: Vec<f32>,
    /// The explained logit: what LRP distributes.
    pub logit: f32,
    /// Σ of all input relevance (equals `logit` when relevance is conserved).
    pub relevance_sum: f32,
    /// Positive relevance per sequence / total positive relevance.
    pub shares: Vec<f32>,
    /// Relevance per sequence / total relevance (signed; may leave [0, 1] when signs mix).
    pub signed_shares: Vec<f32>,
}

/// Relevance of each channel as a fraction of all relevance, signs kept.
pub fn signed_shares(relevance: &[f32], channels: usize) -> Vec<f32> {
    let n = relevance.len() / channels;
    let sums: Vec<f64> = (0..channels).map(|c| relevance[c * n..(c + 1) * n].iter().map(|v| *v as f64).sum()).collect();
    let total: f64 = sums.iter().sum();
    sums.iter().map(|s| if total != 0.0 { (s / total) as f32 } else { 0.0 }).collect()
}

/// Positive relevance of each channel as a fraction of all positive relevance.
pub fn positive_shares(relevance: &[f32], channels: usize) -> Vec<f32> {
    let n = relevance.len() / channels;
    let pos: Vec<f64> = (0..channels)
        .map(|c| relevance[c * n..(c + 1) * n].iter().filter(|v| **v > 0.0).map(|v| *v as f64).sum())
        .collect();
    let total: f64 = pos.iter().sum();
    pos.iter().map(|p| if total > 0.0 { (p / total) as f32 } else { 0.0 }).collect()
}

/// The relevance map for `class` at NIfTI voxel `[x, y, z]` under `composite`.
pub async fn explain(net: &UNet, p: &Prepared, voxel: [usize; 3], class: usize, composite: &Composite) -> Result<VoxelExplanation, String> {
    let [x, y, z] = voxel;
    if x >= p.dims[0] || y >= p.dims[1] || z >= p.dims[2] {
        return Err(format!("voxel {voxel:?} lies outside the volume {:?}", p.dims));
    }
    if class >= net.config.classes {
        return Err(format!("class {class} does not exist (0 = background, 1 = tumour)"));
    }
    // Only the clicked voxel's receptive field is propagated through (crop.rs): same map.
    let [_, _, pd, ph, pw] = p.acts.logits.dims();
    let at = [z, y, x];
    let e = match crate::crop::window(&net.config, at, at, [pd, ph, pw]).filter(|_| p.crop) {
        Some(w) => {
            let acts = crate::crop::crop_activations(net, &p.acts, &w);
            let e = explain_voxel(net, &acts, composite, class, std::array::from_fn(|k| at[k] - w.lo[k]));
            crate::lrp::Explanation { relevance: crate::crop::paste(e.relevance, &w, [pd, ph, pw]), logit: e.logit }
        }
        None => explain_voxel(net, &p.acts, composite, class, at),
    };
    let dims = e.relevance.dims();
    let logit = e.logit.into_data_async().await.map_err(|e| format!("{e:?}"))?.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?[0];
    let channels = net.config.in_channels;
    let relevance = crop(read(e.relevance).await?, channels, dims, p.dims);
    let relevance_sum = relevance.iter().map(|v| *v as f64).sum::<f64>() as f32;
    let shares = positive_shares(&relevance, channels);
    let signed_shares = signed_shares(&relevance, channels);
    Ok(VoxelExplanation { voxel, class, relevance, logit, relevance_sum, shares, signed_shares })
}

#[derive(Clone, Debug, Serialize)]
pub struct RegionExplanation {
    pub class: usize,
    /// Voxels in the region.
    pub voxels: usize,
    /// Voxels whose |ΣM_a| was too small to normalise by (README, "Region maps").
    pub left_out: usize,
    /// `M_A = Σ_{a∈A} M_a / ΣM_a`, 6 channels in file order.
    #[serde(skip)]
    pub relevance: Vec<f32>,
    /// Σ of `M_A`: the number of voxels kept (each normalised map sums to 1).
    pub relevance_sum: f32,
    /// Σ of the explained logits `y_a` over the kept voxels: what LRP started from.
    pub explained_logits: f32,
    /// Σ of `ΣM_a` over the kept voxels: what of it reached the input (before normalising).
    pub reached_input: f32,
    /// `reached_input / explained_logits`: 1 when relevance is conserved; biases and ε absorb
    /// some, stabilisers and α-β rules can add some.
    pub conservation: f32,
    pub shares: Vec<f32>,
    pub signed_shares: Vec<f32>,
}

async fn masked_sum(t: Tensor<5>, mask: &Tensor<5>) -> Result<f32, String> {
    Ok(read((t * mask.clone()).sum().reshape([1, 1, 1, 1, 1])).await?[0])
}

/// The exact two-pass region map of `class` over `region` (one byte per voxel, file order).
pub async fn explain_region(net: &UNet, p: &Prepared, region: &[u8], class: usize, composite: &Composite) -> Result<RegionExplanation, String> {
    let mut maps = explain_regions(net, p, &[region], class, composite).await?;
    Ok(maps.remove(0))
}

/// [`explain_region`] for several regions of one study: the first of the two passes is shared.
pub async fn explain_regions(net: &UNet, p: &Prepared, regions: &[&[u8]], class: usize, composite: &Composite) -> Result<Vec<RegionExplanation>, String> {
    if class >= net.config.classes {
        return Err(format!("class {class} does not exist (0 = background, 1 = tumour)"));
    }
    let [nx, ny, nz] = p.dims;
    for region in regions {
        if region.len() != nx * ny * nz {
            return Err(format!("the region has {} voxels, the study {}", region.len(), nx * ny * nz));
        }
        if !region.iter().any(|v| *v != 0) {
            return Err("the region is empty".into());
        }
    }
    // One window around all the regions (they share the first pass), with their receptive
    // field (crop.rs); the whole grid when that is not smaller.
    let [_, _, pz, py, px] = p.acts.logits.dims();
    let boxes: Vec<([usize; 3], [usize; 3])> = regions.iter().filter_map(|r| crate::crop::bounding_box(r, p.dims)).collect();
    let first: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.0[k]).min().unwrap_or(0));
    let last: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.1[k]).max().unwrap_or(0));
    let window = crate::crop::window(&net.config, first, last, [pz, py, px]).filter(|_| p.crop);
    let cropped = window.map(|w| crate::crop::crop_activations(net, &p.acts, &w));
    let acts = cropped.as_ref().unwrap_or(&p.acts);
    let column_sums = (!regions.is_empty()).then(|| crate::lrp::region::column_sums(net, acts, composite));
    let mut out = Vec::with_capacity(regions.len());
    for region in regions {
        let voxels = region.iter().filter(|v| **v != 0).count();
        let mut mask = vec![0f32; pz * py * px];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    mask[(z * py + y) * px + x] = f32::from(region[x + nx * (y + ny * z)] != 0);
                }
            }
        }
        let device = p.acts.logits.device();
        let mask = Tensor::<5>::from_data(TensorData::new(mask, [1, 1, pz, py, px]), &device);
        let mask = match &window {
            Some(w) => crate::crop::crop_tensor(&mask, w, [pz, py, px]),
            None => mask,
        };
        let sums = column_sums.clone().expect("computed when there are regions");
        let m = crate::lrp::region::region_map_with(net, acts, composite, class, mask, sums);
        let explained_logits = masked_sum(acts.logits.clone().narrow(1, class, 1), &m.kept).await?;
        let reached_input = masked_sum(m.totals.clone(), &m.kept).await?;
        let kept = read(m.kept.clone()).await?.iter().filter(|v| **v > 0.5).count();
        let map = match &window {
            Some(w) => crate::crop::paste(m.relevance, w, [pz, py, px]),
            None => m.relevance,
        };
        let dims = map.dims();
        let channels = net.config.in_channels;
        let relevance = crop(read(map).await?, channels, dims, p.dims);
        let relevance_sum = relevance.iter().map(|v| *v as f64).sum::<f64>() as f32;
        let shares = positive_shares(&relevance, channels);
        let signed_shares = signed_shares(&relevance, channels);
        out.push(RegionExplanation {
            class,
            voxels,
            left_out: voxels - kept,
            relevance,
            relevance_sum,
            explained_logits,
            reached_input,
            conservation: reached_input / explained_logits,
            shares,
            signed_shares,
        });
    }
    Ok(out)
}
