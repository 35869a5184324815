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
        s += &format!("from: {}\n", self.sources.join(", "));
        s
    }
}
