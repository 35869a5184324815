//! A region of a prepared study set up for what faithfulness measures: its score under a
//! changed input, and maps of it computed on the input the region's logits read.
//!
//! A region's logits depend only on the input inside its receptive window, so every forward
//! pass here runs on the nested windows around the region's bounding box (`Pass::around`,
//! exact there) and every map lives on the input's window (`windows[0]`): a perturbation curve
//! of 41 passes costs 41 passes of the window, not of the volume. Norm statistics are those of
//! the study (instance and group norms frozen by one whole-volume pass, as for windowed
//! studies): the network seen under perturbation is the one LRP explains.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Serialize;

use crate::backend::read;
use crate::engine::{Forward, Prepared};
use crate::lrp::region_map::{column_sums, region_map_planned};
use crate::lrp::walk::{nested_windows, propagate_once, Pass, Plan};
use crate::lrp::Composite;
use crate::model::Graph;
use crate::spatial::crop::{bounding_box, refit, Window};
use crate::spatial::tiling::HostInput;

/// What a forward pass says about the region.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Score {
    /// `Σ_{a∈A} y_{c(a)}(a)`: the region's summed logit of the class each voxel is explained for.
    pub logit: f32,
    /// Dice of the region against the voxels of its bounding box predicted as its class(es).
    pub dice: f32,
}

/// A region of a study, ready for perturbed forward passes and for maps.
pub struct Probe {
    graph: Graph,
    device: Device,
    /// The padded grid, tensor axes.
    full: [usize; 3],
    /// Each node's window for passes from the region's bounding box.
    windows: Vec<Window>,
    /// The region's bounding box, tensor axes.
    bbox: Window,
    /// Per voxel of `bbox`: the class it is explained for, 0 outside the region.
    region: Vec<u8>,
    /// `[1, K, …]` on the logits' window: 1 at the class each region voxel is explained for.
    selection: Tensor<5>,
    pub channels: usize,
    /// The normalised input on [`Probe::window`], `[channels, d, h, w]` row-major.
    pub input: Vec<f32>,
    /// Per voxel of the window: whether it lies in the study (not in the padding beyond it).
    pub inside: Vec<bool>,
    /// Voxels in the region.
    pub voxels: usize,
    /// Per channel, the median of the study's outermost voxels (its six faces): the value the
    /// network sees where the scanner saw nothing (`Baseline::Background`).
    pub background: Vec<f32>,
    /// The region's score on the study itself.
    pub unperturbed: Score,
}

impl Probe {
    /// The region `region` (one byte per study voxel, file order; non-zero inside) of `class`,
    /// or with `class` `None` each voxel for the class its byte holds (all foreground).
    pub async fn new(p: &Prepared, region: &[u8], class: Option<usize>) -> Result<Probe, String> {
        let [nx, ny, nz] = p.dims;
        if region.len() != nx * ny * nz {
            return Err(format!("the region has {} voxels, the study {}", region.len(), nx * ny * nz));
        }
        let classes = p.graph.classes;
        if let Some(c) = class.filter(|c| *c >= classes) {
            return Err(format!("class {c} does not exist (the model has classes 0–{})", classes - 1));
        }
        if let Some(v) = region.iter().find(|v| class.is_none() && **v as usize >= classes) {
            return Err(format!("class {v} does not exist (the model has classes 0–{})", classes - 1));
        }
        let (first, last) = bounding_box(region, p.dims).ok_or("the region is empty")?;
        let device = p.device();
        let channels = p.graph.in_channels;
        let (graph, host) = match &p.forward {
            Forward::Whole(trace) => {
                let x = trace.input().clone();
                // Instance and group norms: frozen at the study, as windowed studies are.
                let graph = if p.graph.has_volume_statistics() { p.graph.freeze(x.clone()).0 } else { p.graph.clone() };
                (graph, HostInput { data: read(x).await?, channels, dims: p.padded })
            }
            Forward::Windowed { input, .. } => {
                (p.graph.clone(), HostInput { data: input.data.clone(), channels, dims: p.padded })
            }
        };
        let windows = nested_windows(&graph, first, last, p.padded);
        let w = windows[0];
        if let Forward::Windowed { max_window, .. } = &p.forward {
            if w.voxels() > *max_window {
                return Err(format!(
                    "the region's receptive window ({:?} voxels) is larger than this study's windows allow ({} \
                     voxels): measure a smaller region (a component)",
                    w.dims(),
                    max_window
                ));
            }
        }
        let bbox = Window { lo: first, hi: std::array::from_fn(|k| last[k] + 1) };
        let [bd, bh, bw] = bbox.dims();
        let mut bytes = vec![0u8; bd * bh * bw];
        let mut voxels = 0;
        for z in 0..bd {
            for y in 0..bh {
                for x in 0..bw {
                    let v = region[(bbox.lo[2] + x) + nx * ((bbox.lo[1] + y) + ny * (bbox.lo[0] + z))];
                    if v != 0 {
                        bytes[(z * bh + y) * bw + x] = class.map_or(v, |c| c as u8);
                        voxels += 1;
                    }
                }
            }
        }
        let mut sel = vec![0f32; classes * bytes.len()];
        for (i, &c) in bytes.iter().enumerate().filter(|(_, c)| **c != 0) {
            sel[c as usize * bytes.len() + i] = 1.0;
        }
        let selection = refit(
            Tensor::from_data(TensorData::new(sel, [1, classes, bd, bh, bw]), &device),
            &bbox,
            &windows[graph.output],
        );
        let [wd, wh, ww] = w.dims();
        let mut inside = Vec::with_capacity(w.voxels());
        for z in w.lo[0]..w.hi[0] {
            for y in w.lo[1]..w.hi[1] {
                inside.extend((w.lo[2]..w.lo[2] + ww).map(|x| z < nz && y < ny && x < nx));
            }
        }
        debug_assert_eq!(inside.len(), wd * wh * ww);
        let background = border_medians(&host, p.dims);
        let input = host.values_in(&w);
        let mut probe = Probe {
            graph,
            device,
            full: p.padded,
            windows,
            bbox,
            region: bytes,
            selection,
            channels,
            input,
            inside,
            voxels,
            background,
            unperturbed: Score { logit: 0.0, dice: 1.0 },
        };
        probe.unperturbed = probe.score(&probe.input).await?;
        Ok(probe)
    }

    /// The window of the padded grid the input (and every map) lies on.
    pub fn window(&self) -> Window {
        self.windows[0]
    }

    fn tensor(&self, x: &[f32]) -> Tensor<5> {
        let [d, h, w] = self.window().dims();
        Tensor::from_data(TensorData::new(x.to_vec(), [1, self.channels, d, h, w]), &self.device)
    }

    fn pass(&self, x: &[f32]) -> Result<Pass, String> {
        Pass::around(&self.graph, self.tensor(x), self.windows.clone(), self.full)
    }

    /// The region's score for the input `x` (on [`Probe::window`]).
    pub async fn score(&self, x: &[f32]) -> Result<Score, String> {
        let pass = self.pass(x)?;
        let logits_window = pass.output_window(&self.graph);
        let logits = refit(pass.logits(&self.graph), &logits_window, &self.bbox);
        let values = read(logits).await?;
        let n = self.region.len();
        let classes = values.len() / n;
        let explained: Vec<bool> = (0..classes).map(|c| self.region.contains(&(c as u8))).collect();
        let (mut logit, mut both, mut predicted) = (0f64, 0usize, 0usize);
        for (i, &c) in self.region.iter().enumerate() {
            // Ties go to the lower class, as the segmentation's argmax does.
            let best = (1..classes).fold(0, |b, k| if values[k * n + i] > values[b * n + i] { k } else { b });
            if best != 0 && explained[best] {
                predicted += 1;
            }
            if c != 0 {
                logit += values[c as usize * n + i] as f64;
                both += usize::from(best == c as usize);
            }
        }
        let dice = 2.0 * both as f32 / (self.voxels + predicted) as f32;
        Ok(Score { logit: logit as f32, dice })
    }

    /// The gradient of the region's summed logit with respect to the input, at `x`.
    pub async fn gradient(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        let pass = self.pass(x)?;
        let r = propagate_once(&self.graph, pass, &Composite::Gradient, &self.windows, self.selection.clone());
        read(r).await
    }

    /// The region map `M_A = Σ_{a∈A} M_a / ΣM_a` of Chlebus et al. 2019 under `composite`
    /// (lrp/region_map.rs), on the window.
    pub async fn region_map(&self, composite: &Composite) -> Result<Vec<f32>, String> {
        let pass = self.pass(&self.input)?;
        let plan = Plan::on(&self.graph, &pass, composite, self.windows.clone());
        let sums = column_sums(&plan, &pass);
        let m = region_map_planned(&self.graph, &pass, &plan, self.selection.clone(), sums, None);
        read(m.relevance).await
    }

    /// A map on the window pasted into a study-sized one (`[channels, nz, ny, nx]`, file order;
    /// the padding beyond the study left out).
    pub fn on_study(&self, map: &[f32], dims: [usize; 3]) -> Vec<f32> {
        let mut out = vec![0f32; self.channels * dims.iter().product::<usize>()];
        crate::engine::place(&mut out, map, self.channels, &self.window(), dims);
        out
    }
}

/// Per channel, the median of the voxels on the six faces of the study (`dims` = `[nx, ny,
/// nz]`) within the padded host input.
fn border_medians(host: &HostInput, [nx, ny, nz]: [usize; 3]) -> Vec<f32> {
    let [pd, ph, pw] = host.dims;
    (0..host.channels)
        .map(|c| {
            let mut v = Vec::new();
            for z in 0..nz {
                for y in 0..ny {
                    for x in 0..nx {
                        if z == 0 || y == 0 || x == 0 || z == nz - 1 || y == ny - 1 || x == nx - 1 {
                            v.push(host.data[((c * pd + z) * ph + y) * pw + x]);
                        }
                    }
                }
            }
            let mid = v.len() / 2;
            v.select_nth_unstable_by(mid, f32::total_cmp);
            v[mid]
        })
        .collect()
}
