//! A model card: what a network is and what it expects, shown before it is used, each entry
//! with where it came from.

use serde::Serialize;

/// How one input channel must be normalised before the network reads it (nnU-Net's schemes).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "scheme")]
pub enum Normalisation {
    /// `(x − mean) / std` over the channel (over the non-zero mask when `mask`).
    ZScore { mask: bool },
    /// CT: clip to the dataset's percentiles, then `(x − mean) / std` of the dataset's foreground.
    Ct { lower: f32, upper: f32, mean: f32, std: f32 },
    /// The channel as it is.
    None,
    /// Rescaled to [0, 1] by its own minimum and maximum.
    RescaleTo01,
    /// This project's liver demo: z-score over the body (voxels above 5 % of the 99th percentile).
    Body,
    /// Not stated by the model's files.
    Unknown { note: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Channel {
    pub name: String,
    pub normalisation: Normalisation,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelCard {
    /// e.g. "nnU-Net PlainConvUNet (3d_fullres), 2 folds".
    pub architecture: String,
    pub parameters: usize,
    pub channels: Vec<Channel>,
    /// Class names, index = label value.
    pub classes: Vec<String>,
    /// Voxel spacing the network was trained at, `[x, y, z]` in mm, when known.
    pub target_spacing: Option<[f64; 3]>,
    /// Patch size the network was trained on, `[x, y, z]` voxels, when known.
    pub patch_size: Option<[usize; 3]>,
    /// What the input's sides must be multiples of, `[x, y, z]`.
    pub align: [usize; 3],
    /// Input voxels one logit reads on each side, `[x, y, z]`.
    pub receptive_radius: [usize; 3],
    /// Where each entry came from (file names).
    pub sources: Vec<String>,
    /// How the model's own tool runs it on a study (nnU-Net's predictor), when its files say.
    pub inference: Option<Inference>,
}

/// nnU-Net's predictor: the study cropped to its non-zero box, normalised, resampled to
/// [`ModelCard::target_spacing`], segmented in half-overlapping [`ModelCard::patch_size`]
/// windows blended by a Gaussian, and the logits resampled back (spatial/predictor.rs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inference {
    /// How the study is resampled to the target spacing (`resampling_fn_data_kwargs`).
    pub data: Resampling,
    /// How the logits are resampled back (`resampling_fn_probabilities_kwargs`).
    pub probabilities: Resampling,
    /// Test-time mirroring: each window is also run flipped along every non-empty combination
    /// of these axes (0 = z, 1 = y, 2 = x) and the logits averaged; the checkpoint's
    /// `inference_allowed_mirroring_axes` (empty when it has none).
    pub mirror_axes: Vec<usize>,
}

/// One of nnU-Net's `resampling_fn_*_kwargs` (spatial/resize.rs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Resampling {
    /// Spline order in-plane (or on every axis when the spacing is not anisotropic): 0, 1 or 3.
    pub order: usize,
    /// Spline order along the low-resolution axis when that axis is resampled on its own.
    pub order_z: usize,
    /// `Some(true)`: always resample the coarsest axis on its own; `Some(false)`: never;
    /// `None`: when one spacing is more than 3 times another.
    pub force_separate_z: Option<bool>,
}

impl ModelCard {
    /// The card as text for `seglrp model info`.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n{} parameters\n", self.architecture, self.parameters);
        s += &format!("input channels ({}):\n", self.channels.len());
        for (i, c) in self.channels.iter().enumerate() {
            s += &format!("  {i}: {} — normalisation {:?}\n", c.name, c.normalisation);
        }
        s += &format!("classes ({}): {}\n", self.classes.len(), self.classes.join(", "));
        if let Some(sp) = self.target_spacing {
            s += &format!("target spacing: {} × {} × {} mm\n", sp[0], sp[1], sp[2]);
        }
        if let Some(p) = self.patch_size {
            s += &format!("patch size: {} × {} × {} voxels\n", p[0], p[1], p[2]);
        }
        s += &format!(
            "input sides multiples of {:?}, receptive radius {:?} voxels\n",
            self.align, self.receptive_radius
        );
        if let Some(i) = &self.inference {
            s += &format!(
                "inference: nnU-Net's predictor (resampled with spline order {}, logits back with order {}, \
                 half-overlapping windows, Gaussian weights, mirrored along axes {:?})\n",
                i.data.order, i.probabilities.order, i.mirror_axes
            );
        }
        s += &format!("from: {}\n", self.sources.join(", "));
        s
    }
}

impl Normalisation {
    /// Normalises one channel in place; `mask`: nnU-Net's non-zero mask of the study (for
    /// `ZScore { mask: true }`). The formulas are nnU-Net's (`default_normalization_schemes.py`).
    pub fn apply(&self, ch: &mut [f32], mask: &[bool]) -> Result<(), String> {
        let stats = |values: &mut dyn Iterator<Item = f32>| {
            let (mut n, mut sum, mut sq) = (0usize, 0f64, 0f64);
            for v in values {
                n += 1;
                sum += v as f64;
                sq += (v as f64) * (v as f64);
            }
            let mean = sum / n.max(1) as f64;
            (mean, (sq / n.max(1) as f64 - mean * mean).max(0.0).sqrt())
        };
        match self {
            Normalisation::ZScore { mask: true } => {
                let (mean, std) = stats(&mut ch.iter().zip(mask).filter(|(_, m)| **m).map(|(v, _)| *v));
                for (v, m) in ch.iter_mut().zip(mask) {
                    if *m {
                        *v = ((*v as f64 - mean) / std.max(1e-8)) as f32;
                    }
                }
            }
            Normalisation::ZScore { mask: false } => {
                let (mean, std) = stats(&mut ch.iter().copied());
                ch.iter_mut().for_each(|v| *v = ((*v as f64 - mean) / std.max(1e-8)) as f32);
            }
            Normalisation::Ct { lower, upper, mean, std } => {
                ch.iter_mut().for_each(|v| *v = (v.clamp(*lower, *upper) - mean) / std.max(1e-8));
            }
            Normalisation::RescaleTo01 => {
                let min = ch.iter().copied().fold(f32::INFINITY, f32::min);
                let max = ch.iter().map(|v| v - min).fold(0f32, f32::max).max(1e-8);
                ch.iter_mut().for_each(|v| *v = (*v - min) / max);
            }
            Normalisation::None => {}
            Normalisation::Body => {
                let n = ch.len();
                let one = crate::io::volume::Volume {
                    dims: [n, 1, 1],
                    channels: 1,
                    spacing: [1.0; 3],
                    affine: crate::io::geometry::Affine::diagonal([1.0; 3]),
                    data: ch.to_vec(),
                };
                ch.copy_from_slice(&one.normalised().data);
            }
            Normalisation::Unknown { note } => {
                return Err(format!(
                    "the model does not state how its input is normalised ({note}): choose how (--normalisation on the \
                     command line, Normalisation under the model in the page)"
                ))
            }
        }
        Ok(())
    }

    /// The names `--normalisation` and the page's menu take, in the menu's order.
    pub const NAMES: [&'static str; 5] = ["zscore", "zscore-nonzero", "rescale01", "none", "body"];

    /// A scheme by the name `--normalisation` takes.
    pub fn parse(name: &str) -> Option<Normalisation> {
        Some(match name {
            "zscore" => Normalisation::ZScore { mask: false },
            "zscore-nonzero" => Normalisation::ZScore { mask: true },
            "rescale01" => Normalisation::RescaleTo01,
            "none" => Normalisation::None,
            "body" => Normalisation::Body,
            _ => return None,
        })
    }
}

/// nnU-Net's non-zero mask: voxels where any channel is not 0, with enclosed holes filled
/// (`scipy.ndimage.binary_fill_holes`, face neighbours).
pub fn nonzero_mask(vol: &crate::io::volume::Volume) -> Vec<bool> {
    let n = vol.voxels();
    let mut mask: Vec<bool> = (0..n).map(|i| (0..vol.channels).any(|c| vol.data[c * n + i] != 0.0)).collect();
    let [nx, ny, nz] = vol.dims;
    // Background reachable from the border stays background; the rest is a hole.
    let mut outside = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&i| {
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            !mask[i] && (x == 0 || y == 0 || z == 0 || x + 1 == nx || y + 1 == ny || z + 1 == nz)
        })
        .collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
        let mut visit = |j: usize| {
            if !mask[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < nx {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - nx);
        }
        if y + 1 < ny {
            visit(i + nx);
        }
        if z > 0 {
            visit(i - nx * ny);
        }
        if z + 1 < nz {
            visit(i + nx * ny);
        }
    }
    for (m, o) in mask.iter_mut().zip(&outside) {
        *m = !*o;
    }
    mask
}

impl ModelCard {
    /// What the network reads from `vol` (the card's channels, in order): each channel by its
    /// scheme, or by `all` for every channel where given.
    pub fn normalise(
        &self,
        vol: &crate::io::volume::Volume,
        all: Option<&Normalisation>,
    ) -> Result<crate::io::volume::Volume, String> {
        if vol.channels != self.channels.len() {
            return Err(format!("the model reads {} channels; the study has {}", self.channels.len(), vol.channels));
        }
        let mask = nonzero_mask(vol);
        let mut out = vol.clone();
        let n = vol.voxels();
        for (c, channel) in self.channels.iter().enumerate() {
            let scheme = all.unwrap_or(&channel.normalisation);
            scheme.apply(&mut out.data[c * n..(c + 1) * n], &mask).map_err(|e| format!("{}: {e}", channel.name))?;
        }
        Ok(out)
    }
}
