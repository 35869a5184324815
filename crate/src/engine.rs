//! The path from a loaded volume to a segmentation and to relevance maps, with the host
//! read-backs the browser and the command line share. Read-backs are async because WebGPU
//! cannot block the browser's thread; native callers wrap them in `pollster::block_on`.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Serialize;

use std::sync::{Arc, OnceLock};

mod blended;
pub use blended::{explain_blended, explain_blended_region, Blend};

use crate::backend::read;
use crate::io::volume::Volume;
use crate::lrp::region_map::{column_sums, region_map_planned, selected};
use crate::lrp::target::{start_for, Target};
use crate::lrp::walk::{nested_windows, propagate_once, Pass, Plan};
use crate::lrp::Composite;
use crate::model::card::Normalisation;
use crate::model::{Graph, ModelCard, Trace};
use crate::ops::predicted;
use crate::spatial::crop::{refit, Window};
use crate::spatial::tiling::HostInput;

pub use crate::demo::toy_model::toy_model;

/// The composite the page, `seglrp explain`, `cohort` and `relevance` use unless told otherwise:
/// LRP-ε, the simplest rule and the most faithful of the composites by region perturbation over
/// the demo cohort (README "How faithful is a map?"); the first of the page's menu.
pub const DEFAULT_COMPOSITE: &str = crate::lrp::composite::NAMES[0];

/// Studies whose whole-volume pass would hold more activations than this (bytes, every node's
/// output: [`trace_bytes`]) are windowed (tiling.rs): 2²¹ voxels of the bundled net, 64³ of a
/// 3d_fullres nnU-Net.
pub const WHOLE_PASS_BYTES: u64 = 1 << 30;

/// The activations a whole-volume pass of `graph` on `voxels` (padded) input voxels holds:
/// every node's output (channels × voxels at its resolution, f32).
pub fn trace_bytes(graph: &Graph, voxels: usize) -> u64 {
    let channels = graph.validate().unwrap_or_default();
    let scales = graph.scales().unwrap_or_default();
    channels.iter().zip(&scales).map(|(c, s)| (voxels / s.iter().product::<usize>()) as u64 * *c as u64 * 4).sum()
}

/// Largest window (voxels) an LRP request of a windowed study runs on; its passes hold ~1 kB
/// per voxel.
pub const MAX_WINDOW: usize = 1 << 20;

/// Segmentation, a forward pass that keeps only the skip connections, runs on windows this
/// many times larger: fewer windows, so less recomputed margin.
pub const SEGMENT_WINDOW_FACTOR: usize = 4;

/// How a study's forward pass is kept.
#[derive(Clone, Debug)]
pub enum Forward {
    /// One whole-volume pass, every node's output kept.
    Whole(Trace),
    /// Only the normalised input is kept, on the host; every request runs its own forward pass
    /// on a window of it (tiling.rs). A network with instance or group norms has had them
    /// frozen by one whole-volume pass, whose logits are kept for the segmentation.
    Windowed { input: Arc<HostInput>, max_window: usize, logits: Option<Tensor<5>> },
}

/// Whole-volume pass or windows: [`Mode::Auto`] windows studies above [`WHOLE_PASS_BYTES`].
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
    /// The network (a graph: its tensors are shared handles, so the copy is cheap).
    pub graph: Graph,
    /// Size of the original volume `[nx, ny, nz]`; outputs are cropped back to it.
    pub dims: [usize; 3],
    /// The padded grid the network runs on, tensor axes `[d, h, w]`.
    pub padded: [usize; 3],
    pub forward: Forward,
    /// Per channel, the lowest and highest value of the normalised input: ZBox's bounds.
    pub low: Vec<f32>,
    pub high: Vec<f32>,
    /// Propagate each node only on its nested window around the explained voxels (lrp/walk.rs;
    /// on by default, off to measure what it saves). Windowed studies always crop.
    pub crop: bool,
    /// The predicted class per voxel, once asked for (a windowed study computes it window by
    /// window, so it is kept).
    mask: Arc<OnceLock<Vec<u8>>>,
    device: Device,
}

impl Prepared {
    /// The whole-volume forward pass, unless the study is windowed.
    pub fn whole(&self) -> Option<&Trace> {
        match &self.forward {
            Forward::Whole(t) => Some(t),
            Forward::Windowed { .. } => None,
        }
    }

    /// The whole-volume logits, unless the study is windowed.
    pub fn logits(&self) -> Option<Tensor<5>> {
        self.whole().map(|t| t.value(self.graph.output).clone())
    }

    pub fn windowed(&self) -> bool {
        matches!(self.forward, Forward::Windowed { .. })
    }

    /// The forward pass an LRP request from the box `[first, last]` (padded grid) reads, and
    /// each node's window for it (padded-grid coordinates): the whole pass with each node on its
    /// nested window around the box (or the whole grid when cropping is off), or, for a windowed
    /// study, a pass that computes each node only on its window (`Pass::around`).
    fn pass(&self, first: [usize; 3], last: [usize; 3]) -> Result<(Pass, Vec<Window>), String> {
        let graph = &self.graph;
        let windows = if self.crop || self.windowed() {
            nested_windows(graph, first, last, self.padded)
        } else {
            vec![crate::spatial::crop::whole(self.padded); graph.nodes.len()]
        };
        let pass = match &self.forward {
            Forward::Whole(trace) => Pass::whole(trace),
            Forward::Windowed { input, .. } => {
                Pass::around(graph, input.window(&windows[0], &self.device), windows.clone(), self.padded)?
            }
        };
        Ok((pass, windows))
    }

    pub fn device(&self) -> Device {
        self.device.clone()
    }
}

/// An upper bound on the largest single tensor (bytes) a study of `dims` puts on the device:
/// the largest node output (channels × voxels at its resolution, f32) over the whole padded
/// volume, or over one segmentation window when the study is windowed. A GPU whose
/// storage-buffer limit is below it cannot run the study; the page refuses it before the first
/// pass (web.rs).
pub fn largest_tensor_bytes(graph: &Graph, dims: [usize; 3]) -> u64 {
    let align = graph.alignment();
    let n: usize = dims.iter().map(|d| d.div_ceil(align) * align).product();
    let voxels = if trace_bytes(graph, n) > WHOLE_PASS_BYTES && crate::spatial::tiling::windowable(graph) {
        n.min(MAX_WINDOW * SEGMENT_WINDOW_FACTOR)
    } else {
        n
    };
    let channels = graph.validate().unwrap_or_default();
    let scales = graph.scales().unwrap_or_default();
    channels
        .iter()
        .zip(&scales)
        .map(|(c, s)| (voxels / s.iter().product::<usize>()) as u64 * *c as u64 * 4)
        .max()
        .unwrap_or(0)
}

/// How [`prepare`] takes a study (burn-style options: `PrepareOptions::default().with_mode(..)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepareOptions {
    /// One whole-volume pass or windows ([`Mode::Auto`]: windows above [`WHOLE_PASS_BYTES`]).
    pub mode: Mode,
    /// The volume is already what the network reads (normalised by its model card, or a raw
    /// tensor for checks against other implementations), so it is not normalised here.
    pub normalised: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions { mode: Mode::Auto, normalised: false }
    }
}

impl PrepareOptions {
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn with_normalised(mut self, normalised: bool) -> Self {
        self.normalised = normalised;
        self
    }
}

/// A study ready for `network` (a [`Graph`], or anything that becomes one: this project's
/// `UNet`): normalised unless `options` say it is, padded to the network's alignment, its
/// forward pass done or, for a windowed study, ready to run window by window.
pub fn prepare(
    network: impl Into<Graph>,
    vol: &Volume,
    device: &Device,
    options: PrepareOptions,
) -> Result<Prepared, String> {
    let graph = network.into();
    check_channels(&graph, vol)?;
    if options.normalised {
        prepare_graph(&graph, vol, device, options.mode)
    } else {
        prepare_graph(&graph, &vol.normalised(), device, options.mode)
    }
}

/// A network with its card and how its studies are normalised: what the page and the command
/// line explain, whatever format it came in.
#[derive(Clone)]
pub struct Model {
    pub graph: Graph,
    pub card: ModelCard,
    /// Every channel normalised this way instead of by the card's schemes (`--normalisation`).
    pub normalisation: Option<Normalisation>,
}

impl Model {
    /// The bundled liver model of Chlebus et al. 2019's study (six sequences, two classes).
    pub fn bundled(device: &Device) -> Result<Model, String> {
        let net = crate::model::weights::bundled(device).map_err(|e| e.to_string())?;
        let graph = Graph::from(&net);
        let card = crate::model::open::unet_card(&graph, &net.config, "the bundled liver model");
        Ok(Model { graph, card, normalisation: None })
    }

    /// Whether the model reads the liver demo's six sequences (the demo's study assembly, file
    /// names and figures).
    pub fn is_liver(&self) -> bool {
        self.card.channels.len() == crate::io::volume::SEQUENCES.len()
            && self.card.channels.iter().zip(crate::io::volume::SEQUENCES).all(|(c, s)| c.name == s)
    }

    /// The card's channel names, in the network's order.
    pub fn channel_names(&self) -> Vec<String> {
        self.card.channels.iter().map(|c| c.name.clone()).collect()
    }

    /// `volume` (the card's channels in order) normalised as the card says, padded and its
    /// forward pass done; `options.normalised` is decided here.
    pub fn prepare(&self, volume: &Volume, device: &Device, options: PrepareOptions) -> Result<Prepared, String> {
        let by_card = self.card.channels.iter().all(|c| c.normalisation == Normalisation::Body);
        if by_card && self.normalisation.is_none() {
            return prepare(&self.graph, volume, device, options.with_normalised(false));
        }
        let input = self.card.normalise(volume, self.normalisation.as_ref())?;
        prepare(&self.graph, &input, device, options.with_normalised(true))
    }
}

fn check_channels(graph: &Graph, vol: &Volume) -> Result<(), String> {
    let channels = graph.in_channels;
    if vol.channels == channels {
        return Ok(());
    }
    if channels == crate::io::volume::SEQUENCES.len() {
        return Err(format!(
            "the model needs {channels} sequences ({}); this study has {}",
            crate::io::volume::SEQUENCES.join(", "),
            vol.channels
        ));
    }
    Err(format!("the model reads {channels} channels; this study has {}", vol.channels))
}

fn prepare_graph(graph: &Graph, vol: &Volume, device: &Device, mode: Mode) -> Result<Prepared, String> {
    let channels = vol.channels;
    let padded = vol.padded(graph.alignment());
    let [nx, ny, nz] = padded.dims;
    let n = padded.voxels();
    let range = |c: usize| {
        padded.data[c * n..(c + 1) * n]
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
    };
    let (low, high) = (0..channels).map(range).unzip();
    let max_window = match mode {
        Mode::Auto if trace_bytes(graph, n) > WHOLE_PASS_BYTES => Some(MAX_WINDOW),
        Mode::Windowed(max) => Some(max),
        _ => None,
    };
    let mut graph = graph.clone();
    let forward = match max_window {
        Some(max_window) => {
            let mut logits = None;
            if graph.has_volume_statistics() {
                // Instance and group norms read the whole volume: one pass freezes their
                // statistics (and gives the segmentation); windows then see the same values.
                let x = Tensor::<5>::from_data(TensorData::new(padded.data.clone(), [1, channels, nz, ny, nx]), device);
                let (frozen, out) = graph.freeze(x);
                graph = frozen;
                logits = Some(out);
            }
            let input = Arc::new(HostInput { data: padded.data, channels, dims: [nz, ny, nx] });
            Forward::Windowed { input, max_window, logits }
        }
        None => Forward::Whole(
            graph.trace(Tensor::<5>::from_data(TensorData::new(padded.data, [1, channels, nz, ny, nx]), device)),
        ),
    };
    Ok(Prepared {
        graph,
        dims: vol.dims,
        padded: [nz, ny, nx],
        forward,
        low,
        high,
        crop: true,
        mask: Arc::default(),
        device: device.clone(),
    })
}

/// The composite called `name` (Zennit's names, plus "Epsilon"), with ZBox bounds from the
/// study; or, when `name` is JSON (`{"composite": "Custom", "default": {"rule": "epsilon",
/// "epsilon": 1e-6}, "layers": [["head", {"rule": "z_plus", "stabilizer": 1e-6}]]}`), that
/// composite.
pub fn composite(name: &str, p: &Prepared) -> Result<Composite, String> {
    composite_within(name, &p.low, &p.high)
}

/// [`composite`] with ZBox bounds `low`, `high` (per channel).
pub fn composite_within(name: &str, low: &[f32], high: &[f32]) -> Result<Composite, String> {
    if name.trim_start().starts_with('{') {
        let c: Composite = serde_json::from_str(name).map_err(|e| format!("the composite JSON is not usable: {e}"))?;
        if let Composite::Custom { default, layers } = &c {
            for rule in std::iter::once(default).chain(layers.iter().map(|(_, r)| r)) {
                rule.validate(low.len())?;
            }
        }
        return Ok(c);
    }
    match Composite::by_name(name) {
        Some(Composite::EpsilonGammaBox { .. }) => {
            Ok(Composite::EpsilonGammaBox { low: low.to_vec(), high: high.to_vec() })
        }
        Some(c) => Ok(c),
        None => Err(format!(
            "unknown composite \"{name}\"; choose one of {} or give a JSON file",
            Composite::NAMES.join(", ")
        )),
    }
}

/// Crops a `[channels, z, y, x]` host buffer of the padded grid back to `dims`.
pub fn crop(data: Vec<f32>, channels: usize, padded: [usize; 5], dims: [usize; 3]) -> Vec<f32> {
    let [_, _, pz, py, px] = padded;
    Volume {
        dims: [px, py, pz],
        channels,
        spacing: [1.0; 3],
        affine: crate::io::geometry::Affine::diagonal([1.0; 3]),
        data,
    }
    .cropped(dims)
    .data
}

/// Predicted class per voxel (argmax of the logits; ties go to the lower class, background
/// first), file order.
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
        Forward::Whole(t) => read(predicted(t.value(p.graph.output).clone())).await?,
        Forward::Windowed { logits: Some(logits), .. } => read(predicted(logits.clone())).await?,
        Forward::Windowed { input, max_window, .. } => crate::spatial::tiling::segmentation(
            &p.graph,
            input,
            &p.device,
            max_window * SEGMENT_WINDOW_FACTOR,
            progress,
        )
        .await?
        .into_iter()
        .map(f32::from)
        .collect(),
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
    /// Σ of the input relevance on the study's voxels (with `padding_relevance`, `logit` when
    /// relevance is conserved).
    pub relevance_sum: f32,
    /// Σ of the relevance that fell on the zero padding the network's alignment added beyond
    /// the study (the maps leave it out; Flat and ZBox first layers put some there).
    pub padding_relevance: f32,
    /// Positive relevance per sequence / total positive relevance; `None` (JSON null) when no
    /// voxel has positive relevance, with the reason in `no_shares`.
    pub shares: Option<Vec<f32>>,
    /// Relevance per sequence / total relevance (signed; may leave [0, 1] when signs mix);
    /// `None` when the total is zero.
    pub signed_shares: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_shares: Option<&'static str>,
}

impl VoxelExplanation {
    /// The explanation of a map `relevance` (`channels` × the study's voxels) of `logit`, with
    /// what fell on the padding: its sums and shares.
    fn new(voxel: [usize; 3], class: usize, relevance: Vec<f32>, channels: usize, logit: f32, padding: f64) -> Self {
        let relevance_sum = relevance.iter().map(|v| *v as f64).sum::<f64>() as f32;
        let shares = positive_shares(&relevance, channels);
        let signed_shares = signed_shares(&relevance, channels);
        let no_shares = no_shares(&shares);
        VoxelExplanation {
            voxel,
            class,
            relevance,
            logit,
            relevance_sum,
            padding_relevance: padding as f32,
            shares,
            signed_shares,
            no_shares,
        }
    }
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

fn check_class(p: &Prepared, class: usize) -> Result<(), String> {
    let classes = p.graph.classes;
    if class < classes {
        return Ok(());
    }
    if classes == crate::io::volume::CLASSES.len() {
        return Err(format!("class {class} does not exist (0 = background, 1 = tumour)"));
    }
    Err(format!("class {class} does not exist (the model has classes 0–{})", classes - 1))
}

/// The relevance map for `class` at NIfTI voxel `[x, y, z]` under `composite`.
pub async fn explain(
    p: &Prepared,
    voxel: [usize; 3],
    class: usize,
    composite: &Composite,
) -> Result<VoxelExplanation, String> {
    let [x, y, z] = voxel;
    if x >= p.dims[0] || y >= p.dims[1] || z >= p.dims[2] {
        return Err(format!("voxel {voxel:?} lies outside the volume {:?}", p.dims));
    }
    check_class(p, class)?;
    // Each node runs on its nested window around the clicked voxel (lrp/walk.rs): same map. A
    // windowed study computes each node only there, and the rules are made one node at a time
    // (`propagate_once`): a click holds little more than the activations its receptive field
    // spans.
    let at = [z, y, x];
    let graph = &p.graph;
    let (pass, windows) = p.pass(at, at)?;
    let at_logits = pass.output_window(graph);
    let local: [usize; 3] = std::array::from_fn(|k| at[k] - at_logits.lo[k]);
    let start = start_for(&pass.logits(graph), class, local, Target::Logit);
    let start = refit(start, &at_logits, &windows[graph.output]);
    let logit = read(start.clone().sum().reshape([1, 1, 1, 1, 1])).await?[0];
    let r = propagate_once(graph, pass, composite, &windows, start);
    let channels = graph.in_channels;
    let mut relevance = vec![0f32; channels * p.dims.iter().product::<usize>()];
    let padding = place(&mut relevance, &read(r).await?, channels, &windows[0], p.dims);
    Ok(VoxelExplanation::new(voxel, class, relevance, channels, logit, padding))
}

#[derive(Clone, Debug, Serialize)]
pub struct RegionExplanation {
    /// The class explained; `None`: each voxel's own ([`ALL_FOREGROUND`]).
    pub class: Option<usize>,
    /// Voxels in the region.
    pub voxels: usize,
    /// Voxels whose |ΣM_a| was too small to normalise by (README, "LRP").
    pub left_out: usize,
    /// `M_A = Σ_{a∈A} M_a / ΣM_a`, 6 channels in file order.
    #[serde(skip)]
    pub relevance: Vec<f32>,
    /// Σ of `M_A` on the study's voxels: the number of voxels kept (each normalised map sums to
    /// 1 over the padded input the network reads) less `padding_relevance`.
    pub relevance_sum: f32,
    /// Σ of `M_A` on the zero padding added beyond the study (left out of the map).
    pub padding_relevance: f32,
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

/// Adds a `[channels, window]` map computed on window `w` of the padded grid into `out`, a
/// `[channels, nz, ny, nx]` map of the original volume (`dims` = `[nx, ny, nz]`): the host
/// does the pasting, so a windowed study never holds a whole-grid map on the device. Returns
/// the relevance that fell on the padding (not pasted).
pub(crate) fn place(out: &mut [f32], window: &[f32], channels: usize, w: &Window, dims: [usize; 3]) -> f64 {
    let [nx, ny, nz] = dims;
    let [wd, wh, ww] = w.dims();
    let n = nx * ny * nz;
    let all: f64 = window.iter().map(|v| *v as f64).sum();
    let mut placed = 0f64;
    let xs = w.lo[2]..w.hi[2].min(nx);
    if xs.is_empty() {
        return all;
    }
    for c in 0..channels {
        for z in w.lo[0]..w.hi[0].min(nz) {
            for y in w.lo[1]..w.hi[1].min(ny) {
                let src = ((c * wd + z - w.lo[0]) * wh + y - w.lo[1]) * ww;
                let dst = c * n + (z * ny + y) * nx;
                for (o, v) in out[dst + xs.start..dst + xs.end].iter_mut().zip(&window[src..src + xs.len()]) {
                    *o += *v;
                    placed += *v as f64;
                }
            }
        }
    }
    all - placed
}

/// The class choice that explains every foreground voxel of a multi-class model for its own
/// class at once (the region's bytes hold each voxel's class), as menus and messages name it.
pub const ALL_FOREGROUND: &str = "all foreground";

/// The exact two-pass region maps of `class` over `regions` (one byte per voxel, file order,
/// each non-empty): the first of the two passes is shared. `class` `None` ([`ALL_FOREGROUND`]):
/// each region voxel is explained for the class its byte holds (1…K−1), in the same two passes.
/// `progress(done, total)` is called after each LRP pass (two per window: column sums, then
/// maps), so that the page can say how far a region map is.
///
/// The regions' voxels are explained around all of them (each node on its nested window) — or,
/// for a windowed study whose window would be too large, core by core (tiling.rs): the map is a
/// sum over the region's voxels, so the cores' maps add up. Which voxels are left out depends on
/// the largest `|ΣM_a|` of the whole region, so cores are visited twice: first for the column
/// sums ([`first_visit`]), then for the maps ([`second_visit`]).
pub async fn explain_regions(
    p: &Prepared,
    regions: &[&[u8]],
    class: Option<usize>,
    composite: &Composite,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<RegionExplanation>, String> {
    if let Some(c) = class {
        check_class(p, c)?;
    }
    let [nx, ny, nz] = p.dims;
    for region in regions {
        if region.len() != nx * ny * nz {
            return Err(format!("the region has {} voxels, the study {}", region.len(), nx * ny * nz));
        }
        if !region.iter().any(|v| *v != 0) {
            return Err("the region is empty".into());
        }
        if class.is_none() {
            if let Some(v) = region.iter().find(|v| **v as usize >= p.graph.classes) {
                return Err(format!("class {v} does not exist (the model has classes 0–{})", p.graph.classes - 1));
            }
        }
    }
    let boxes: Vec<([usize; 3], [usize; 3])> =
        regions.iter().filter_map(|r| crate::spatial::crop::bounding_box(r, p.dims)).collect();
    let first: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.0[k]).min().unwrap_or(0));
    let last: [usize; 3] = std::array::from_fn(|k| boxes.iter().map(|b| b.1[k]).max().unwrap_or(0));
    let cores = match &p.forward {
        Forward::Windowed { max_window, .. } => {
            crate::spatial::tiling::cores(&p.graph, first, last, p.padded, *max_window)
        }
        Forward::Whole(_) => vec![(first, last)],
    };
    let job = RegionJob { p, regions, class, composite };
    let mut largest = vec![0f32; regions.len()];
    let mut visits: Vec<Sums> = Vec::with_capacity(cores.len());
    for &core in &cores {
        visits.push(job.first_visit(core, cores.len() == 1, &mut largest).await?);
        progress(visits.len(), 2 * cores.len());
    }
    let mut sums: Vec<RegionSums> =
        regions.iter().map(|_| RegionSums::new(p.graph.in_channels * nx * ny * nz)).collect();
    for (done, (visit, &core)) in visits.into_iter().zip(&cores).enumerate() {
        job.second_visit(visit, core, &largest, &mut sums).await?;
        progress(cores.len() + done + 1, 2 * cores.len());
    }
    Ok(sums.into_iter().zip(regions).map(|(s, region)| s.explanation(class, region, p.graph.in_channels)).collect())
}

/// What [`explain_regions`] reads on every visit of a core.
struct RegionJob<'a> {
    p: &'a Prepared,
    regions: &'a [&'a [u8]],
    class: Option<usize>,
    composite: &'a Composite,
}

/// Where a core's column sums `Lᵀ1` wait for its second visit.
enum Sums {
    /// On the device, with the core's forward pass and rules (a single core).
    Kept { pass: Pass, plan: Plan, sums: Tensor<5> },
    /// On the host (several cores: the forward pass is run again on the second visit).
    Host(Vec<f32>, [usize; 5]),
}

/// One region's map and totals, summed over the cores.
struct RegionSums {
    relevance: Vec<f32>,
    /// Σ of the explained logits over the kept voxels.
    explained_logits: f32,
    /// Σ of `ΣM_a` over the kept voxels.
    reached_input: f32,
    kept: usize,
    padding: f64,
}

impl RegionSums {
    fn new(len: usize) -> RegionSums {
        RegionSums { relevance: vec![0f32; len], explained_logits: 0.0, reached_input: 0.0, kept: 0, padding: 0.0 }
    }

    fn explanation(self, class: Option<usize>, region: &[u8], channels: usize) -> RegionExplanation {
        let voxels = region.iter().filter(|v| **v != 0).count();
        let shares = positive_shares(&self.relevance, channels);
        RegionExplanation {
            class,
            voxels,
            left_out: voxels - self.kept,
            relevance_sum: self.relevance.iter().map(|v| *v as f64).sum::<f64>() as f32,
            padding_relevance: self.padding as f32,
            explained_logits: self.explained_logits,
            reached_input: self.reached_input,
            conservation: self.reached_input / self.explained_logits,
            no_shares: no_shares(&shares),
            shares,
            signed_shares: signed_shares(&self.relevance, channels),
            relevance: self.relevance,
        }
    }
}

impl RegionJob<'_> {
    /// The region restricted to the core `(lo, hi)` as a selection (`[1, K, …]`, 1 at the class
    /// each voxel is explained for: lrp/region_map.rs) on window `w` of the padded grid (None when
    /// the region has no voxel there).
    fn selection_in(&self, region: &[u8], w: &Window, (lo, hi): ([usize; 3], [usize; 3])) -> Option<Tensor<5>> {
        let [nx, ny, nz] = self.p.dims;
        let [wd, wh, ww] = w.dims();
        let per = wd * wh * ww;
        let mut m = vec![0f32; self.p.graph.classes * per];
        let mut any = false;
        for z in lo[0].max(w.lo[0])..=hi[0].min(nz - 1).min(w.hi[0] - 1) {
            for y in lo[1].max(w.lo[1])..=hi[1].min(ny - 1).min(w.hi[1] - 1) {
                for x in lo[2].max(w.lo[2])..=hi[2].min(nx - 1).min(w.hi[2] - 1) {
                    let v = region[x + nx * (y + ny * z)];
                    if v != 0 {
                        let c = self.class.unwrap_or(v as usize);
                        m[c * per + ((z - w.lo[0]) * wh + y - w.lo[1]) * ww + x - w.lo[2]] = 1.0;
                        any = true;
                    }
                }
            }
        }
        let shape = [1, self.p.graph.classes, wd, wh, ww];
        any.then(|| Tensor::<5>::from_data(TensorData::new(m, shape), &self.p.device))
    }

    fn logits_on(&self, pass: &Pass, plan: &Plan) -> Tensor<5> {
        pass.value(self.p.graph.output, &plan.output_window())
    }

    fn plan(&self, (lo, hi): ([usize; 3], [usize; 3])) -> Result<(Pass, Plan), String> {
        let (pass, windows) = self.p.pass(lo, hi)?;
        let plan = Plan::on(&self.p.graph, &pass, self.composite, windows);
        Ok((pass, plan))
    }

    /// The column sums `Lᵀ1` of a core, and each region's largest `|ΣM_a|` there folded into
    /// `largest`; `keep` keeps the core's pass and rules on the device for the second visit.
    async fn first_visit(
        &self,
        core: ([usize; 3], [usize; 3]),
        keep: bool,
        largest: &mut [f32],
    ) -> Result<Sums, String> {
        let (pass, plan) = self.plan(core)?;
        let sums = column_sums(&plan, &pass);
        let totals = self.logits_on(&pass, &plan) * sums.clone();
        let out_w = plan.output_window();
        for (l, region) in largest.iter_mut().zip(self.regions) {
            if let Some(sel) = self.selection_in(region, &out_w, core) {
                let m = selected(totals.clone(), &sel).abs().max().reshape([1, 1, 1, 1, 1]);
                *l = l.max(read(m).await?[0]);
            }
        }
        Ok(if keep {
            Sums::Kept { pass, plan, sums }
        } else {
            let dims = sums.dims();
            Sums::Host(read(sums).await?, dims)
        })
    }

    /// Each region's map on a core, added into `out`.
    async fn second_visit(
        &self,
        visit: Sums,
        core: ([usize; 3], [usize; 3]),
        largest: &[f32],
        out: &mut [RegionSums],
    ) -> Result<(), String> {
        let (pass, plan, sums) = match visit {
            Sums::Kept { pass, plan, sums } => (pass, plan, sums),
            Sums::Host(host, dims) => {
                let (pass, plan) = self.plan(core)?;
                (pass, plan, Tensor::from_data(TensorData::new(host, dims), &self.p.device))
            }
        };
        let (out_w, in_w) = (plan.output_window(), plan.input_window());
        for (i, region) in self.regions.iter().enumerate() {
            let Some(sel) = self.selection_in(region, &out_w, core) else { continue };
            let logits = selected(self.logits_on(&pass, &plan), &sel);
            let m = region_map_planned(&self.p.graph, &pass, &plan, sel, sums.clone(), Some(largest[i]));
            let o = &mut out[i];
            o.explained_logits += masked_sum(logits, &m.kept).await?;
            o.reached_input += masked_sum(m.totals.clone(), &m.kept).await?;
            o.kept += read(m.kept.clone()).await?.iter().filter(|v| **v > 0.5).count();
            o.padding +=
                place(&mut o.relevance, &read(m.relevance).await?, self.p.graph.in_channels, &in_w, self.p.dims);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::unet::{Down, NormKind, UNet, UNetConfig};

    fn graph(norm: NormKind) -> Graph {
        let cfg = UNetConfig {
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
        };
        let device = crate::backend::cpu_device("cpu").expect("a CPU backend");
        crate::model::unet::graph(&UNet::seeded(&cfg, 1, 0.1, &device))
    }

    #[test]
    fn largest_tensor_is_the_full_resolution_concatenation() {
        // 63 pads to 64 (3 levels align to 4): the whole padded volume, 32 channels of f32.
        assert_eq!(largest_tensor_bytes(&graph(NormKind::None), [63, 64, 30]), 64 * 64 * 32 * 32 * 4);
        // Windowed studies hold one segmentation window at a time.
        let windowed = (MAX_WINDOW * SEGMENT_WINDOW_FACTOR) as u64 * 32 * 4;
        assert_eq!(largest_tensor_bytes(&graph(NormKind::None), [512, 512, 256]), windowed);
        // Instance norm cannot be windowed: the whole volume.
        assert_eq!(largest_tensor_bytes(&graph(NormKind::Instance), [512, 512, 256]), 512 * 512 * 256 * 32 * 4);
    }
}
