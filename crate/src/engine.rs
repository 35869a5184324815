//! The path from a loaded volume to a segmentation and to relevance maps, with the host
//! read-backs the browser and the command line share. Read-backs are async because WebGPU
//! cannot block the browser's thread; native callers wrap them in `pollster::block_on`.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Serialize;

use std::sync::{Arc, OnceLock};

use crate::crop::Window;
use crate::lrp::{explain_voxel, Composite};
use crate::tiling::HostInput;
use crate::unet::{Activations, UNet};
use crate::volume::Volume;

pub use crate::toy_model::toy_model;

/// The composite `seglrp explain` and `relevance` use unless told otherwise: LRP-ε, the simplest rule.
/// (The page's menu and `seglrp cohort` start with EpsilonGammaBox.)
pub const DEFAULT_COMPOSITE: &str = "Epsilon";

/// Studies of more voxels than this (padded) are windowed (tiling.rs) when the model allows
/// it: a whole-volume pass of the bundled net holds ~500 bytes of activations per voxel.
pub const WHOLE_PASS_VOXELS: usize = 1 << 21;

/// Largest window (voxels) an LRP request of a windowed study runs on; its passes hold ~1 kB
/// per voxel.
pub const MAX_WINDOW: usize = 1 << 20;

/// Segmentation, a forward pass that keeps only the skip connections, runs on windows this
/// many times larger: fewer windows, so less recomputed margin.
pub const SEGMENT_WINDOW_FACTOR: usize = 4;

/// How a study's forward pass is kept.
#[derive(Clone, Debug)]
pub enum Forward {
    /// One whole-volume pass, every activation kept.
    Whole(Activations),
    /// Only the normalised input is kept, on the host; every request runs its own forward pass
    /// on a window of it (tiling.rs).
    Windowed { net: UNet, input: Arc<HostInput>, max_window: usize },
}

/// Whole-volume pass or windows: [`Mode::Auto`] windows studies above [`WHOLE_PASS_VOXELS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Whole,
    /// Windows of at most this many voxels.
    Windowed(usize),
}

/// A study ready for the network: normalised and padded, with its forward pass done (or, for
/// a windowed study, ready to be done window by window).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Size of the original volume `[nx, ny, nz]`; outputs are cropped back to it.
    pub dims: [usize; 3],
    /// The padded grid the network runs on, tensor axes `[d, h, w]`.
    pub padded: [usize; 3],
    pub forward: Forward,
    /// Per channel, the lowest and highest value of the normalised input: ZBox's bounds.
    pub low: Vec<f32>,
    pub high: Vec<f32>,
    /// Propagate only through the explained voxels' receptive field (crop.rs; on by default,
    /// off to measure what it saves). Windowed studies always crop.
    pub crop: bool,
    /// The predicted class per voxel, once asked for (a windowed study computes it window by
    /// window, so it is kept).
    mask: Arc<OnceLock<Vec<u8>>>,
}

impl Prepared {
    /// The whole-volume activations, unless the study is windowed.
    pub fn whole(&self) -> Option<&Activations> {
        match &self.forward {
            Forward::Whole(a) => Some(a),
            Forward::Windowed { .. } => None,
        }
    }

    pub fn windowed(&self) -> bool {
        matches!(self.forward, Forward::Windowed { .. })
    }

    /// The activations within `w` (the whole grid's, cropped, or a forward pass on the window).
    fn activations(&self, net: &UNet, w: &Window) -> Activations {
        match &self.forward {
            Forward::Whole(a) if *w == crate::crop::whole(self.padded) => a.clone(),
            Forward::Whole(a) => crate::crop::crop_activations(net, a, w),
            Forward::Windowed { input, .. } => net.forward_all(input.window(w, &self.device())),
        }
    }

    fn device(&self) -> Device {
        match &self.forward {
            Forward::Whole(a) => a.logits.device(),
            Forward::Windowed { net, .. } => net.head.weight.val().device(),
        }
    }

    /// The window an LRP pass from the box `[first, last]` needs.
    fn window_for(&self, net: &UNet, first: [usize; 3], last: [usize; 3]) -> Window {
        let whole = crate::crop::whole(self.padded);
        match &self.forward {
            Forward::Whole(_) if !self.crop => whole,
            Forward::Whole(_) => crate::crop::window(&net.config, first, last, self.padded).unwrap_or(whole),
            Forward::Windowed { .. } => crate::crop::window_of(&net.config, first, last, self.padded),
        }
    }
}

/// An upper bound on the largest single tensor (bytes) a study of `dims` puts on the device: the
/// full-resolution decoder's concatenation (2 × base channels, f32) over the whole padded volume,
/// or over one segmentation window when the study is windowed. A GPU whose storage-buffer limit
/// is below it cannot run the study; the page refuses it before the first pass (web.rs).
pub fn largest_tensor_bytes(cfg: &crate::unet::UNetConfig, dims: [usize; 3]) -> u64 {
    let align = cfg.align();
    let n: usize = dims.iter().map(|d| d.div_ceil(align) * align).product();
    let voxels = if n > WHOLE_PASS_VOXELS && crate::tiling::windowable(cfg) {
        n.min(MAX_WINDOW * SEGMENT_WINDOW_FACTOR)
    } else {
        n
    };
    let channels = (2 * cfg.base_channels).max(cfg.in_channels);
    (voxels as u64) * (channels as u64) * 4
}

pub fn prepare(net: &UNet, vol: &Volume, device: &Device) -> Result<Prepared, String> {
    prepare_with(net, vol, device, Mode::Auto)
}

/// [`prepare`] with the choice between one whole-volume pass and windows made by the caller.
pub fn prepare_with(net: &UNet, vol: &Volume, device: &Device, mode: Mode) -> Result<Prepared, String> {
    check_channels(net, vol)?;
    prepare_normalised_with(net, &vol.normalised(), device, mode)
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

/// As [`prepare`] for a volume that is already what the network reads (no normalisation), with
/// one whole-volume pass: for checks against other implementations on raw tensors.
pub fn prepare_normalised(net: &UNet, vol: &Volume, device: &Device) -> Result<Prepared, String> {
    prepare_normalised_with(net, vol, device, Mode::Whole)
}

fn prepare_normalised_with(net: &UNet, vol: &Volume, device: &Device, mode: Mode) -> Result<Prepared, String> {
    check_channels(net, vol)?;
    let channels = vol.channels;
    let padded = vol.padded(net.config.align());
    let [nx, ny, nz] = padded.dims;
    let n = padded.voxels();
    let range = |c: usize| {
        padded.data[c * n..(c + 1) * n]
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
    };
    let (low, high) = (0..channels).map(range).unzip();
    let windowable = crate::tiling::windowable(&net.config);
    let max_window = match mode {
        Mode::Auto if n > WHOLE_PASS_VOXELS && windowable => Some(MAX_WINDOW),
        Mode::Windowed(_) if !windowable => {
            return Err(
                "this model uses instance norm, whose statistics span the whole volume: it cannot run in windows"
                    .into(),
            )
        }
        Mode::Windowed(max) => Some(max),
        _ => None,
    };
    let forward = match max_window {
        Some(max_window) => Forward::Windowed {
            net: net.clone(),
            input: Arc::new(HostInput { data: padded.data, channels, dims: [nz, ny, nx] }),
            max_window,
        },
        None => Forward::Whole(
            net.forward_all(Tensor::<5>::from_data(TensorData::new(padded.data, [1, channels, nz, ny, nx]), device)),
        ),
    };
    Ok(Prepared { dims: vol.dims, padded: [nz, ny, nx], forward, low, high, crop: true, mask: Arc::default() })
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
        Some(Composite::EpsilonGammaBox { .. }) => {
            Ok(Composite::EpsilonGammaBox { low: p.low.clone(), high: p.high.clone() })
        }
        Some(c) => Ok(c),
        None => Err(format!(
            "unknown composite \"{name}\"; choose one of {} or give a JSON file",
            Composite::NAMES.join(", ")
        )),
    }
}

pub(crate) async fn read(t: Tensor<5>) -> Result<Vec<f32>, String> {
    let data = t.into_data_async().await.map_err(|e| format!("reading back from the device failed: {e:?}"))?;
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// Crops a `[channels, z, y, x]` host buffer of the padded grid back to `dims`.
pub fn crop(data: Vec<f32>, channels: usize, padded: [usize; 5], dims: [usize; 3]) -> Vec<f32> {
    let [_, _, pz, py, px] = padded;
    Volume {
        dims: [px, py, pz],
        channels,
        spacing: [1.0; 3],
        affine: crate::geometry::Affine::diagonal([1.0; 3]),
        data,
    }
    .cropped(dims)
    .data
}

/// Predicted class per voxel (argmax of the two logits; ties go to background), file order.
pub async fn segmentation(p: &Prepared) -> Result<Vec<u8>, String> {
    segmentation_with_progress(p, |_, _| {}).await
}

/// [`segmentation`], calling `progress(done, total)` after each window of a windowed study.
pub async fn segmentation_with_progress(p: &Prepared, progress: impl FnMut(usize, usize)) -> Result<Vec<u8>, String> {
    if let Some(mask) = p.mask.get() {
        return Ok(mask.clone());
    }
    let [pz, py, px] = p.padded;
    let padded = match &p.forward {
        Forward::Whole(a) => {
            let logits = a.logits.clone();
            let fg = logits.clone().narrow(1, 1, 1).greater(logits.narrow(1, 0, 1)).float();
            read(fg).await?
        }
        Forward::Windowed { net, input, max_window } => {
            crate::tiling::segmentation(net, input, &p.device(), max_window * SEGMENT_WINDOW_FACTOR, progress)
                .await?
                .into_iter()
                .map(f32::from)
                .collect()
        }
    };
    let mask: Vec<u8> = crop(padded, 1, [1, 1, pz, py, px], p.dims).into_iter().map(|v| v as u8).collect();
    let _ = p.mask.set(mask.clone());
    Ok(mask)
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
    /// Positive relevance per sequence / total positive relevance; `None` (JSON null) when no
    /// voxel has positive relevance, with the reason in `no_shares`.
    pub shares: Option<Vec<f32>>,
    /// Relevance per sequence / total relevance (signed; may leave [0, 1] when signs mix);
    /// `None` when the total is zero.
    pub signed_shares: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_shares: Option<&'static str>,
}

/// Why a map has no shares: the page, the CLI and the cohort CSV say this instead of zeros.
pub const NO_POSITIVE_RELEVANCE: &str = "no positive relevance";

fn no_shares(shares: &Option<Vec<f32>>) -> Option<&'static str> {
    shares.is_none().then_some(NO_POSITIVE_RELEVANCE)
}

/// Relevance of each channel as a fraction of all relevance, signs kept; `None` when the
/// total is zero or not finite (there is nothing to take a fraction of).
pub fn signed_shares(relevance: &[f32], channels: usize) -> Option<Vec<f32>> {
    let n = relevance.len() / channels;
    let sums: Vec<f64> = (0..channels).map(|c| relevance[c * n..(c + 1) * n].iter().map(|v| *v as f64).sum()).collect();
    let total: f64 = sums.iter().sum();
    (total != 0.0 && total.is_finite()).then(|| sums.iter().map(|s| (s / total) as f32).collect())
}

/// Positive relevance of each channel as a fraction of all positive relevance (they sum to
/// 1); `None` when no voxel has positive relevance.
pub fn positive_shares(relevance: &[f32], channels: usize) -> Option<Vec<f32>> {
    let n = relevance.len() / channels;
    let pos: Vec<f64> = (0..channels)
        .map(|c| relevance[c * n..(c + 1) * n].iter().filter(|v| **v > 0.0).map(|v| *v as f64).sum())
        .collect();
    let total: f64 = pos.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| pos.iter().map(|p| (p / total) as f32).collect())
}

/// The relevance map for `class` at NIfTI voxel `[x, y, z]` under `composite`.
pub async fn explain(
    net: &UNet,
    p: &Prepared,
    voxel: [usize; 3],
    class: usize,
    composite: &Composite,
) -> Result<VoxelExplanation, String> {
    let [x, y, z] = voxel;
    if x >= p.dims[0] || y >= p.dims[1] || z >= p.dims[2] {
        return Err(format!("voxel {voxel:?} lies outside the volume {:?}", p.dims));
    }
    if class >= net.config.classes {
        return Err(format!("class {class} does not exist (0 = background, 1 = tumour)"));
    }
    // Only the clicked voxel's receptive field is propagated through (crop.rs): same map.
    let at = [z, y, x];
    let w = p.window_for(net, at, at);
    let acts = p.activations(net, &w);
    let e = explain_voxel(net, &acts, composite, class, std::array::from_fn(|k| at[k] - w.lo[k]));
    let logit = e
        .logit
        .into_data_async()
        .await
        .map_err(|e| format!("{e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?[0];
    let channels = net.config.in_channels;
    let mut relevance = vec![0f32; channels * p.dims.iter().product::<usize>()];
    place(&mut relevance, &read(e.relevance).await?, channels, &w, p.dims);
    let relevance_sum = relevance.iter().map(|v| *v as f64).sum::<f64>() as f32;
    let shares = positive_shares(&relevance, channels);
    let signed_shares = signed_shares(&relevance, channels);
    let no_shares = no_shares(&shares);
    Ok(VoxelExplanation { voxel, class, relevance, logit, relevance_sum, shares, signed_shares, no_shares })
}

#[derive(Clone, Debug, Serialize)]
pub struct RegionExplanation {
    pub class: usize,
    /// Voxels in the region.
    pub voxels: usize,
    /// Voxels whose |ΣM_a| was too small to normalise by (README, "LRP").
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
    /// As [`VoxelExplanation::shares`].
    pub shares: Option<Vec<f32>>,
    pub signed_shares: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_shares: Option<&'static str>,
}

async fn masked_sum(t: Tensor<5>, mask: &Tensor<5>) -> Result<f32, String> {
    Ok(read((t * mask.clone()).sum().reshape([1, 1, 1, 1, 1])).await?[0])
}

/// The exact two-pass region map of `class` over `region` (one byte per voxel, file order).
pub async fn explain_region(
    net: &UNet,
    p: &Prepared,
    region: &[u8],
    class: usize,
    composite: &Composite,
) -> Result<RegionExplanation, String> {
    let mut maps = explain_regions(net, p, &[region], class, composite).await?;
    Ok(maps.remove(0))
}

/// Adds a `[channels, window]` map computed on window `w` of the padded grid into `out`, a
/// `[channels, nz, ny, nx]` map of the original volume (`dims` = `[nx, ny, nz]`): the host
/// does the pasting, so a windowed study never holds a whole-grid map on the device.
fn place(out: &mut [f32], window: &[f32], channels: usize, w: &Window, dims: [usize; 3]) {
    let [nx, ny, nz] = dims;
    let [wd, wh, ww] = w.dims();
    let n = nx * ny * nz;
    let xs = w.lo[2]..w.hi[2].min(nx);
    if xs.is_empty() {
        return;
    }
    for c in 0..channels {
        for z in w.lo[0]..w.hi[0].min(nz) {
            for y in w.lo[1]..w.hi[1].min(ny) {
                let src = ((c * wd + z - w.lo[0]) * wh + y - w.lo[1]) * ww;
                let dst = c * n + (z * ny + y) * nx;
                for (o, v) in out[dst + xs.start..dst + xs.end].iter_mut().zip(&window[src..src + xs.len()]) {
                    *o += *v;
                }
            }
        }
    }
}

/// The rules for LRP from the core `[first, last]` (padded grid) on activations cropped to `w`,
/// each layer on its nested window (lrp/unet.rs).
fn plan_around(
    net: &UNet,
    acts: &crate::unet::Activations,
    composite: &Composite,
    w: &Window,
    (first, last): ([usize; 3], [usize; 3]),
) -> crate::lrp::unet::Plan {
    // The window was made around the core, so the core lies inside it.
    let inside = |v: [usize; 3]| -> [usize; 3] { std::array::from_fn(|k| v[k] - w.lo[k]) };
    crate::lrp::unet::Plan::around(net, acts, composite, inside(first), inside(last))
}

/// [`explain_region`] for several regions of one study: the first of the two passes is shared.
///
/// The regions' voxels are explained on one window around all of them (with their receptive
/// field, crop.rs) — or, for a windowed study whose window would be too large, core by core
/// (tiling.rs): the map is a sum over the region's voxels, so the cores' maps add up. Which
/// voxels are left out depends on the largest `|ΣM_a|` of the whole region, so cores are
/// visited twice: first for the column sums, then for the maps.
pub async fn explain_regions(
    net: &UNet,
    p: &Prepared,
    regions: &[&[u8]],
    class: usize,
    composite: &Composite,
) -> Result<Vec<RegionExplanation>, String> {
    explain_regions_with_progress(net, p, regions, class, composite, |_, _| {}).await
}

/// [`explain_regions`], calling `progress(done, total)` after each of its LRP passes (two per
/// window: column sums, then maps), so that the page can say how far a region map is.
pub async fn explain_regions_with_progress(
    net: &UNet,
    p: &Prepared,
    regions: &[&[u8]],
    class: usize,
    composite: &Composite,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<RegionExplanation>, String> {
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
    let boxes: Vec<([usize; 3], [usize; 3])> =
        regions.iter().filter_map(|r| crate::crop::bounding_box(r, p.dims)).collect();
    let first: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.0[k]).min().unwrap_or(0));
    let last: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.1[k]).max().unwrap_or(0));
    let cores = match &p.forward {
        Forward::Windowed { max_window, .. } => crate::tiling::cores(&net.config, first, last, p.padded, *max_window),
        Forward::Whole(_) => vec![(first, last)],
    };

    let channels = net.config.in_channels;
    let device = p.device();
    // Each region's mask restricted to a core, on that core's window.
    // (None when the region has no voxel there.)
    let mask_in = |region: &[u8], w: &Window, (lo, hi): ([usize; 3], [usize; 3])| -> Option<Tensor<5>> {
        let [wd, wh, ww] = w.dims();
        let mut m = vec![0f32; wd * wh * ww];
        let mut any = false;
        for z in lo[0]..=hi[0].min(nz - 1) {
            for y in lo[1]..=hi[1].min(ny - 1) {
                for x in lo[2]..=hi[2].min(nx - 1) {
                    if region[x + nx * (y + ny * z)] != 0 {
                        m[((z - w.lo[0]) * wh + y - w.lo[1]) * ww + x - w.lo[2]] = 1.0;
                        any = true;
                    }
                }
            }
        }
        any.then(|| Tensor::<5>::from_data(TensorData::new(m, [1, 1, wd, wh, ww]), &device))
    };
    // First visit: the column sums Lᵀ1 of each core's window and each region's largest |ΣM_a|.
    let mut largest = vec![0f32; regions.len()];
    let mut visits = Vec::with_capacity(cores.len());
    for &core in &cores {
        let w = p.window_for(net, core.0, core.1);
        let acts = p.activations(net, &w);
        let plan = plan_around(net, &acts, composite, &w, core);
        let sums = crate::lrp::region::column_sums(net, &acts, &plan);
        let totals = acts.logits.clone().narrow(1, class, 1) * sums.clone().narrow(1, class, 1);
        for (l, region) in largest.iter_mut().zip(regions) {
            if let Some(mask) = mask_in(region, &w, core) {
                let m = (totals.clone().abs() * mask).max().reshape([1, 1, 1, 1, 1]);
                *l = l.max(read(m).await?[0]);
            }
        }
        // One core: keep its pass and rules for the second visit. Several: keep only the column
        // sums (on the host), and run the forward pass again.
        if cores.len() == 1 {
            visits.push((w, Some((acts, plan)), Ok(sums)));
        } else {
            let dims = sums.dims();
            visits.push((w, None, Err((read(sums).await?, dims))));
        }
        progress(visits.len(), 2 * cores.len());
    }
    let voxels_in = |region: &[u8]| region.iter().filter(|v| **v != 0).count();
    let mut out: Vec<(Vec<f32>, f32, f32, usize)> =
        regions.iter().map(|_| (vec![0f32; channels * nx * ny * nz], 0.0, 0.0, 0)).collect();
    let mut done = 0;
    for ((w, acts, sums), &core) in visits.into_iter().zip(&cores) {
        let (acts, plan) = match acts {
            Some(ap) => ap,
            None => {
                let acts = p.activations(net, &w);
                let plan = plan_around(net, &acts, composite, &w, core);
                (acts, plan)
            }
        };
        let sums: Tensor<5> = match sums {
            Ok(t) => t,
            Err((host, dims)) => Tensor::from_data(TensorData::new(host, dims), &device),
        };
        for (i, region) in regions.iter().enumerate() {
            let Some(mask) = mask_in(region, &w, core) else { continue };
            let m = crate::lrp::region::region_map_largest(net, &acts, &plan, class, mask, sums.clone(), largest[i]);
            let o = &mut out[i];
            o.1 += masked_sum(acts.logits.clone().narrow(1, class, 1), &m.kept).await?;
            o.2 += masked_sum(m.totals.clone(), &m.kept).await?;
            o.3 += read(m.kept.clone()).await?.iter().filter(|v| **v > 0.5).count();
            place(&mut o.0, &read(m.relevance).await?, channels, &w, p.dims);
        }
        done += 1;
        progress(cores.len() + done, 2 * cores.len());
    }
    Ok(out
        .into_iter()
        .zip(regions)
        .map(|((relevance, explained_logits, reached_input, kept), region)| {
            let voxels = voxels_in(region);
            let shares = positive_shares(&relevance, channels);
            RegionExplanation {
                class,
                voxels,
                left_out: voxels - kept,
                relevance_sum: relevance.iter().map(|v| *v as f64).sum::<f64>() as f32,
                explained_logits,
                reached_input,
                conservation: reached_input / explained_logits,
                no_shares: no_shares(&shares),
                shares,
                signed_shares: signed_shares(&relevance, channels),
                relevance,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unet::{Down, NormKind, UNetConfig};

    fn config(norm: NormKind) -> UNetConfig {
        UNetConfig {
            in_channels: 6,
            classes: 2,
            levels: 3,
            base_channels: 16,
            blocks: 1,
            norm,
            down: Down::MaxPool,
            up: Default::default(),
            activation: Default::default(),
            norm_eps: 1e-5,
        }
    }

    #[test]
    fn largest_tensor_is_the_full_resolution_concatenation() {
        let cfg = config(NormKind::None);
        // 63 pads to 64 (3 levels align to 4): the whole padded volume, 32 channels of f32.
        assert_eq!(largest_tensor_bytes(&cfg, [63, 64, 30]), 64 * 64 * 32 * 32 * 4);
        // Windowed studies hold one segmentation window at a time.
        assert_eq!(largest_tensor_bytes(&cfg, [512, 512, 256]), (MAX_WINDOW * SEGMENT_WINDOW_FACTOR) as u64 * 32 * 4);
        // Instance norm cannot be windowed: the whole volume.
        assert_eq!(largest_tensor_bytes(&config(NormKind::Instance), [512, 512, 256]), 512 * 512 * 256 * 32 * 4);
    }
}
