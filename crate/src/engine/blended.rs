//! LRP of nnU-Net's predictor (spatial/predictor.rs): where windows overlap, its logit at a voxel
//! is a Gaussian-weighted mean of the logits of the windows that hold it, each window averaged
//! over its mirrorings, each run as nnU-Net runs it (a pass over the window alone: its instance
//! norms see only the window). Every rule is linear in the relevance it starts from, so the
//! relevance of the blended logit is the same weighted mean of the windows' (and mirrorings')
//! maps, and a region map `M_A = Σ_a M_a / ΣM_a` keeps its two-pass form: one transpose pass per
//! window and mirroring gives every `ΣM_a` as the weighted sum of the windows' `y (Lᵀ1)`, and one
//! LRP pass per window and mirroring, started from `β y / ΣM_a`, sums the normalised maps.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    composite_within, explain, no_shares, positive_shares, prepare, signed_shares, Mode, PrepareOptions,
    RegionExplanation, VoxelExplanation,
};
use crate::backend::read;
use crate::io::volume::Volume;
use crate::lrp::region_map::{column_sums, LEFT_OUT_FRACTION};
use crate::lrp::walk::{propagate, Pass, Plan};
use crate::model::Graph;
use crate::spatial::sliding::{self, Patches};

/// nnU-Net's blend of windows over the network's input, and the composite that explains it.
pub struct Blend<'a> {
    pub graph: &'a Graph,
    /// The study as the network reads it ([`crate::spatial::predictor::network_input`]).
    pub input: &'a Volume,
    pub patches: Patches,
    /// Mirroring axes (0 = z, 1 = y, 2 = x); empty: none.
    pub mirror: &'a [usize],
    /// A composite's name or JSON ([`super::composite`]); ZBox bounds are the whole input's.
    pub composite: &'a str,
}

/// `data` (`channels` × `dims` `[x, y, z]`) flipped along `axes` (0 = z, 1 = y, 2 = x).
fn flipped(data: &[f32], channels: usize, dims: [usize; 3], axes: &[usize]) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let flip = |a: usize, i: usize, n: usize| if axes.contains(&a) { n - 1 - i } else { i };
    let mut out = vec![0f32; data.len()];
    for c in 0..channels {
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let to = flip(2, x, nx) + nx * (flip(1, y, ny) + ny * (flip(0, z, nz) + nz * c));
                    out[to] = data[x + nx * (y + ny * (z + nz * c))];
                }
            }
        }
    }
    out
}

/// The padded input, its windows and their Gaussian: what both explanations walk over.
struct Layout {
    data: Vec<f32>,
    dims: [usize; 3],
    pad: [usize; 3],
    origins: Vec<[usize; 3]>,
    gaussian: Vec<f32>,
    /// The mirrorings of each window, the unflipped one first.
    sets: Vec<Vec<usize>>,
    low: Vec<f32>,
    high: Vec<f32>,
}

impl Layout {
    fn new(b: &Blend) -> Layout {
        let (data, dims, pad) = sliding::pad_to(b.input, b.patches.size);
        let range = |c: usize| {
            b.input.channel(c).iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
        };
        let (low, high) = (0..b.input.channels).map(range).unzip();
        Layout {
            origins: sliding::origins(dims, b.patches),
            gaussian: sliding::gaussian(b.patches.size),
            sets: std::iter::once(vec![]).chain(sliding::combinations(b.mirror)).collect(),
            data,
            dims,
            pad,
            low,
            high,
        }
    }

    /// Index on the padded grid of voxel `v` of window `o`.
    fn at(&self, o: [usize; 3], v: [usize; 3]) -> usize {
        (o[0] + v[0]) + self.dims[0] * ((o[1] + v[1]) + self.dims[1] * (o[2] + v[2]))
    }

    /// The sum of the windows' Gaussians at every voxel of the padded grid.
    fn weights(&self, w: [usize; 3]) -> Vec<f32> {
        let mut total = vec![0f32; self.dims.iter().product()];
        for &o in &self.origins {
            for (j, g) in self.gaussian.iter().enumerate() {
                total[self.at(o, [j % w[0], (j / w[0]) % w[1], j / (w[0] * w[1])])] += g;
            }
        }
        total
    }

    /// Window `o` flipped along `axes`, as a `[1, C, z, y, x]` tensor.
    fn window(&self, channels: usize, o: [usize; 3], w: [usize; 3], axes: &[usize], device: &Device) -> Tensor<5> {
        let patch = flipped(&sliding::patch_of(&self.data, channels, self.dims, o, w), channels, w, axes);
        Tensor::from_data(TensorData::new(patch, [1, channels, w[2], w[1], w[0]]), device)
    }

    /// A `channels` × padded-grid map back on the input's grid; returns it and what fell on the
    /// padding.
    fn unpad(&self, map: &[f32], channels: usize, dims: [usize; 3]) -> (Vec<f32>, f64) {
        let [nx, ny, nz] = dims;
        let mut out = Vec::with_capacity(channels * nx * ny * nz);
        for c in 0..channels {
            for z in 0..nz {
                for y in 0..ny {
                    let start = self.pad[0]
                        + self.dims[0] * ((self.pad[1] + y) + self.dims[1] * ((self.pad[2] + z) + self.dims[2] * c));
                    out.extend_from_slice(&map[start..start + nx]);
                }
            }
        }
        let all: f64 = map.iter().map(|v| *v as f64).sum();
        let kept: f64 = out.iter().map(|v| *v as f64).sum();
        (out, all - kept)
    }
}

/// The relevance of nnU-Net's blended logit of `class` at voxel `[x, y, z]` of `b.input`;
/// `progress(done, total)` after each window and mirroring.
pub async fn explain_blended(
    b: &Blend<'_>,
    voxel: [usize; 3],
    class: usize,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<VoxelExplanation, String> {
    let input = b.input;
    if (0..3).any(|a| voxel[a] >= input.dims[a]) {
        return Err(format!("voxel {voxel:?} lies outside the network's grid {:?}", input.dims));
    }
    let w = b.patches.size;
    let l = Layout::new(b);
    let at: [usize; 3] = std::array::from_fn(|a| voxel[a] + l.pad[a]);
    let holding: Vec<([usize; 3], f32)> = l
        .origins
        .iter()
        .filter(|o| (0..3).all(|a| at[a] >= o[a] && at[a] < o[a] + w[a]))
        .map(|o| (*o, l.gaussian[(at[0] - o[0]) + w[0] * ((at[1] - o[1]) + w[1] * (at[2] - o[2]))]))
        .collect();
    let total: f32 = holding.iter().map(|(_, g)| g).sum();
    let channels = input.channels;
    let mut relevance = vec![0f32; channels * l.dims.iter().product::<usize>()];
    let mut logit = 0f32;
    let comp = composite_within(b.composite, &l.low, &l.high)?;
    let jobs = holding.len() * l.sets.len();
    let mut done = 0;
    for (o, weight) in &holding {
        let patch = sliding::patch_of(&l.data, channels, l.dims, *o, w);
        let local: [usize; 3] = std::array::from_fn(|a| at[a] - o[a]);
        for axes in &l.sets {
            let alpha = weight / total / l.sets.len() as f32;
            let flip = |a: usize, i: usize| if axes.contains(&(2 - a)) { w[a] - 1 - i } else { i };
            let v = Volume {
                dims: w,
                channels,
                spacing: input.spacing,
                affine: input.affine.clone(),
                data: flipped(&patch, channels, w, axes),
            };
            let options = PrepareOptions::default().with_mode(Mode::Whole).with_normalised(true);
            let p = prepare(b.graph, &v, device, options)?;
            let e = explain(&p, std::array::from_fn(|a| flip(a, local[a])), class, &comp).await?;
            logit += alpha * e.logit;
            let back = flipped(&e.relevance, channels, w, axes);
            for c in 0..channels {
                for (j, r) in back[c * v.voxels()..(c + 1) * v.voxels()].iter().enumerate() {
                    let i = l.at(*o, [j % w[0], (j / w[0]) % w[1], j / (w[0] * w[1])]);
                    relevance[i + c * l.dims.iter().product::<usize>()] += alpha * r;
                }
            }
            done += 1;
            progress(done, jobs);
        }
    }
    let (map, padding) = l.unpad(&relevance, channels, input.dims);
    Ok(VoxelExplanation::new(voxel, class, map, channels, logit, padding))
}

/// The region map of nnU-Net's blended logits of `class` over `region` (1 = in, on `b.input`'s
/// grid, x fastest), with the left-out rule of the one-pass region maps (lrp/region_map.rs);
/// `progress(done, total)` after each pass of a window and mirroring (two each).
pub async fn explain_blended_region(
    b: &Blend<'_>,
    region: &[u8],
    class: usize,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<RegionExplanation, String> {
    let input = b.input;
    let w = b.patches.size;
    let l = Layout::new(b);
    let n: usize = l.dims.iter().product();
    let wn: usize = w.iter().product();
    let mut inside = vec![false; n];
    let [nx, ny, _] = input.dims;
    for (i, r) in region.iter().enumerate() {
        if *r != 0 {
            inside[l.at(l.pad, [i % nx, (i / nx) % ny, i / (nx * ny)])] = true;
        }
    }
    let voxels = inside.iter().filter(|v| **v).count();
    let weights = l.weights(w);
    let composite = composite_within(b.composite, &l.low, &l.high)?;
    // Windows that hold part of the region, and each voxel's β (its window's share of the blend).
    let jobs: Vec<[usize; 3]> = l
        .origins
        .iter()
        .copied()
        .filter(|&o| (0..wn).any(|j| inside[l.at(o, [j % w[0], (j / w[0]) % w[1], j / (w[0] * w[1])])]))
        .collect();
    let sets = l.sets.len() as f32;
    let local = |j: usize| [j % w[0], (j / w[0]) % w[1], j / (w[0] * w[1])];
    let beta = |o: [usize; 3], j: usize| l.gaussian[j] / weights[l.at(o, local(j))] / sets;
    // One forward pass, its rules and, per voxel of the window (unflipped), y·(Lᵀ1) of `class`.
    let run = |o: [usize; 3], axes: &[usize]| -> (Plan, Pass, Tensor<5>) {
        let trace = b.graph.trace(l.window(input.channels, o, w, axes, device));
        let plan = Plan::new(b.graph, &trace, &composite);
        let logits = trace.value(b.graph.output).clone().narrow(1, class, 1);
        (plan, Pass::whole(&trace), logits)
    };
    // First pass: ΣM_a = Σ_{windows, mirrorings} β y (Lᵀ1) at every voxel of the region.
    let mut total = vec![0f64; n];
    let mut y_of = Vec::with_capacity(jobs.len() * l.sets.len());
    let passes = 2 * jobs.len() * l.sets.len();
    for &o in &jobs {
        for axes in &l.sets {
            let (plan, pass, logits) = run(o, axes);
            let pass_sums = column_sums(&plan, &pass).narrow(1, class, 1);
            let y = flipped(&read(logits).await?, 1, w, axes);
            let lt1 = flipped(&read(pass_sums).await?, 1, w, axes);
            for j in 0..wn {
                let i = l.at(o, local(j));
                if inside[i] {
                    total[i] += (beta(o, j) * y[j] * lt1[j]) as f64;
                }
            }
            y_of.push(y);
            progress(y_of.len(), passes);
        }
    }
    let largest = (0..n).filter(|i| inside[*i]).fold(0f64, |m, i| m.max(total[i].abs()));
    let kept: Vec<bool> = (0..n).map(|i| inside[i] && total[i].abs() >= largest * LEFT_OUT_FRACTION as f64).collect();
    // Second pass: each window's LRP from β y / ΣM_a on the kept voxels, flipped back and summed.
    let channels = input.channels;
    let mut relevance = vec![0f32; channels * n];
    let (mut explained, mut reached) = (0f64, 0f64);
    for (k, (&o, axes)) in jobs.iter().flat_map(|o| l.sets.iter().map(move |s| (o, s))).enumerate() {
        let y = &y_of[k];
        let mut start = vec![0f32; wn];
        for j in 0..wn {
            let i = l.at(o, local(j));
            if kept[i] {
                start[j] = (beta(o, j) as f64 * y[j] as f64 / total[i]) as f32;
                explained += (beta(o, j) * y[j]) as f64;
            }
        }
        let (plan, _, _) = run(o, axes);
        let classes = b.graph.classes;
        let mut all = vec![0f32; classes * wn];
        all[class * wn..(class + 1) * wn].copy_from_slice(&flipped(&start, 1, w, axes));
        let start = Tensor::<5>::from_data(TensorData::new(all, [1, classes, w[2], w[1], w[0]]), device);
        let back = flipped(&read(propagate(&plan, start)).await?, channels, w, axes);
        for c in 0..channels {
            for (j, r) in back[c * wn..(c + 1) * wn].iter().enumerate() {
                relevance[l.at(o, local(j)) + c * n] += r;
            }
        }
        progress(y_of.len() + k + 1, passes);
    }
    for i in 0..n {
        if kept[i] {
            reached += total[i];
        }
    }
    let (map, padding) = l.unpad(&relevance, channels, input.dims);
    let shares = positive_shares(&map, channels);
    Ok(RegionExplanation {
        class: Some(class),
        voxels,
        left_out: voxels - kept.iter().filter(|k| **k).count(),
        relevance_sum: map.iter().map(|v| *v as f64).sum::<f64>() as f32,
        signed_shares: signed_shares(&map, channels),
        no_shares: no_shares(&shares),
        shares,
        relevance: map,
        padding_relevance: padding as f32,
        explained_logits: explained as f32,
        reached_input: reached as f32,
        conservation: (reached / explained) as f32,
    })
}
