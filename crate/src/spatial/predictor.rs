//! nnU-Net's predictor (`nnUNetPredictor.predict_single_npy_array`): the study is cropped to the
//! box of its non-zero voxels (holes filled), normalised
//! by the card's schemes, resampled to the configuration's spacing ([`resize`]), segmented in
//! sliding windows ([`sliding`], each window averaged over its mirrorings unless asked not to),
//! and the blended logits are resampled back to the cropped grid;
//! each voxel takes the class of its highest logit and voxels outside the box are background.
//! The labels are nnU-Net's, voxel for voxel where no resampling happens (tests/graph_parity.py
//! runs `nnUNetPredictor` on the same folder and study).

use burn::prelude::*;
use half::f16;

use crate::io::geometry::Affine;
use crate::io::volume::Volume;
use crate::model::card::{nonzero_mask, ModelCard, Normalisation, Resampling};
use crate::model::Graph;
use crate::spatial::resize::{new_shape, resize};
use crate::spatial::sliding::{argmax, blend, Blended, Patches};

/// A study segmented as nnU-Net does it.
pub struct Prediction {
    /// The class of each voxel on the study's grid (x fastest).
    pub labels: Vec<u8>,
    /// The grid the network ran on (the cropped study at the target spacing), `[x, y, z]`.
    pub grid: [usize; 3],
    /// The study's non-zero box, first and last voxel `[x, y, z]`.
    pub first: [usize; 3],
    pub last: [usize; 3],
    pub windows: usize,
}

/// First and last voxel of the non-zero box `[x, y, z]` (the whole grid when nothing is non-zero).
fn nonzero_box(vol: &Volume) -> ([usize; 3], [usize; 3]) {
    let mask: Vec<u8> = nonzero_mask(vol).into_iter().map(u8::from).collect();
    match crate::spatial::crop::bounding_box(&mask, vol.dims) {
        // Tensor axes [z, y, x] there.
        Some((first, last)) => ([first[2], first[1], first[0]], [last[2], last[1], last[0]]),
        None => ([0; 3], vol.dims.map(|d| d - 1)),
    }
}

/// The box `[first, last]` of `vol`.
fn crop(vol: &Volume, first: [usize; 3], last: [usize; 3]) -> Volume {
    let dims: [usize; 3] = std::array::from_fn(|a| last[a] - first[a] + 1);
    let [nx, ny, nz] = vol.dims;
    let mut data = Vec::with_capacity(vol.channels * dims.iter().product::<usize>());
    for c in 0..vol.channels {
        for z in first[2]..=last[2] {
            for y in first[1]..=last[1] {
                let start = first[0] + nx * (y + ny * (z + nz * c));
                data.extend_from_slice(&vol.data[start..start + dims[0]]);
            }
        }
    }
    Volume { dims, channels: vol.channels, spacing: vol.spacing, affine: vol.affine.clone(), data }
}

/// The study as nnU-Net's network reads it: cropped to its non-zero box, normalised, resampled
/// to the target spacing.
pub struct NetworkInput {
    /// On the network's grid; its affine places it in the study's world (for exports).
    pub volume: Volume,
    /// The non-zero box on the study's grid, first voxel and size `[x, y, z]`.
    pub first: [usize; 3],
    pub cropped: [usize; 3],
}

impl NetworkInput {
    /// The network-grid voxel whose centre lies nearest the study's voxel `v`; `None` outside
    /// the non-zero box (nnU-Net labels it background without running the network).
    pub fn voxel_of(&self, v: [usize; 3]) -> Option<[usize; 3]> {
        let grid = self.volume.dims;
        (0..3).all(|a| v[a] >= self.first[a] && v[a] < self.first[a] + self.cropped[a]).then(|| {
            std::array::from_fn(|a| {
                let at = (v[a] - self.first[a]) as f64 + 0.5;
                ((at * grid[a] as f64 / self.cropped[a] as f64 - 0.5).round().max(0.0) as usize).min(grid[a] - 1)
            })
        })
    }
}

/// The raw study `vol` (the card's channels, in order) as nnU-Net's network reads it;
/// `normalisation` replaces the card's schemes for every channel.
pub fn network_input(
    card: &ModelCard,
    normalisation: Option<&Normalisation>,
    vol: &Volume,
) -> Result<NetworkInput, String> {
    let (Some(how), Some(target)) = (&card.inference, card.target_spacing) else {
        return Err("the model's files do not say how nnU-Net runs it (plans with a spacing, a patch size and \
                    nnU-Net's default resampling)"
            .into());
    };
    let (first, last) = nonzero_box(vol);
    let cropped = card.normalise(&crop(vol, first, last), normalisation)?;
    let spacing = vol.spacing.map(|s| s as f64);
    let grid = new_shape(cropped.dims, spacing, target);
    // Network voxel j has its centre at cropped voxel (j + ½)·cropped/grid − ½.
    let scale: [f64; 3] = std::array::from_fn(|a| cropped.dims[a] as f64 / grid[a] as f64);
    let to_study = Affine(std::array::from_fn(|i| {
        let mut row = [0f64; 4];
        row[i] = scale[i];
        row[3] = first[i] as f64 + 0.5 * scale[i] - 0.5;
        row
    }));
    let volume = Volume {
        dims: grid,
        channels: cropped.channels,
        spacing: target.map(|s| s as f32),
        affine: vol.affine.after(&to_study),
        data: resize(&cropped.data, cropped.channels, cropped.dims, grid, spacing, target, how.data),
    };
    Ok(NetworkInput { volume, first, cropped: cropped.dims })
}

/// Segments the raw study `vol` (the card's channels, in order) as nnU-Net's predictor does;
/// `normalisation` replaces the card's schemes for every channel; `mirror`: test-time mirroring
/// along the card's axes (nnU-Net's default). `progress(done, total)` after each window.
pub async fn predict(
    graph: &Graph,
    card: &ModelCard,
    normalisation: Option<&Normalisation>,
    vol: &Volume,
    mirror: bool,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> Result<Prediction, String> {
    let input = network_input(card, normalisation, vol)?;
    let (Some(how), Some(patch)) = (&card.inference, card.patch_size) else {
        return Err("the model's files give no patch size for nnU-Net's windows".into());
    };
    let axes = if mirror { how.mirror_axes.as_slice() } else { &[] };
    let blended = blend(graph, &input.volume, Patches::new(patch), axes, device, progress).await?;
    let labels = labels_on_study(&input, &blended, card, vol)?;
    let last = std::array::from_fn(|a| input.first[a] + input.cropped[a] - 1);
    Ok(Prediction { labels, grid: input.volume.dims, first: input.first, last, windows: blended.origins.len() })
}

/// The predictor's labels on the study's grid from its blend on the network's grid: the float16
/// logits resampled back as nnU-Net does, the highest taken, background outside the box.
pub fn labels_on_study(
    input: &NetworkInput,
    blended: &Blended,
    card: &ModelCard,
    vol: &Volume,
) -> Result<Vec<u8>, String> {
    let (Some(how), Some(target)) = (&card.inference, card.target_spacing) else {
        return Err("the model's files do not say how nnU-Net resamples".into());
    };
    let (grid, cropped, first) = (input.volume.dims, input.cropped, input.first);
    let logits = if grid == cropped {
        blended.half.clone()
    } else {
        // nnU-Net resamples its float16 logits in float64 and stores them in float16 again.
        let spacing = vol.spacing.map(|s| s as f64);
        let back = resize(&blended.half, blended.classes, grid, cropped, target, spacing, how.probabilities);
        back.iter().map(|v| f16::from_f32(*v).to_f32()).collect()
    };
    let inside = argmax(&logits, blended.classes);
    let mut labels = vec![0u8; vol.voxels()];
    let [nx, ny, _] = vol.dims;
    let [cx, cy, _] = cropped;
    for (j, l) in inside.iter().enumerate() {
        let (x, y, z) = (j % cx, (j / cx) % cy, j / (cx * cy));
        labels[(first[0] + x) + nx * ((first[1] + y) + ny * (first[2] + z))] = *l;
    }
    Ok(labels)
}

/// A label map of the study moved onto the network's grid as nnU-Net's preprocessing moves
/// segmentations (`resize_segmentation`: each label's mask resampled linearly, the coarse axis
/// nearest where the spacing is anisotropic, and a voxel takes the last label whose mask
/// reaches ½ there).
pub fn label_on_grid(label: &[u8], input: &NetworkInput, card: &ModelCard, vol: &Volume) -> Vec<u8> {
    let grid = input.volume.dims;
    let one = Volume { channels: 1, data: label.iter().map(|v| *v as f32).collect(), ..vol.clone() };
    let last = std::array::from_fn(|a| input.first[a] + input.cropped[a] - 1);
    let cropped = crop(&one, input.first, last);
    let mut values: Vec<u8> = cropped.data.iter().map(|v| *v as u8).collect();
    values.sort_unstable();
    values.dedup();
    let spacing = vol.spacing.map(|s| s as f64);
    let target = card.target_spacing.unwrap_or(spacing);
    let how = Resampling { order: 1, order_z: 0, force_separate_z: None };
    let mut out = vec![0u8; grid.iter().product()];
    for v in values {
        let mask: Vec<f32> = cropped.data.iter().map(|l| f32::from(*l as u8 == v)).collect();
        let moved = resize(&mask, 1, cropped.dims, grid, spacing, target, how);
        for (o, m) in out.iter_mut().zip(&moved) {
            if *m >= 0.5 {
                *o = v;
            }
        }
    }
    out
}
