//! Multi-sequence liver phantoms: the demo's patients and the model's training data.
//!
//! [`anatomy`] draws a patient (organs, vessels, lesions) as geometry in millimetres,
//! [`scanner`] images it as the six sequences on a grid. Everything is deterministic from a
//! seed and identical on native and wasm32, so the demo cohort is generated on demand (in the
//! browser too) instead of being shipped.

pub mod anatomy;
pub mod scanner;
pub mod toy;

pub use toy::{phantom, sample_nifti, SAMPLE_DIMS, SAMPLE_SEED};

use crate::io::volume::Volume;
use crate::rng::SplitMix;
use anatomy::{Lesion, Patient};
use scanner::{Acquisition, Grid};

pub struct Phantom {
    pub volume: Volume,
    /// 1 = tumour, 0 = anything else (cysts included); same grid as `volume`.
    pub label: Vec<u8>,
    /// The patient's lesions (tumours and cysts), wherever they lie relative to the grid.
    pub lesions: Vec<Lesion>,
}

/// The demo's volumes: 128 × 96 voxels in-plane (abdomens are wider than deep), 40 slices.
pub const COHORT_DIMS: [usize; 3] = [128, 96, 40];
/// Patients in the demo cohort (held out: training never draws these seeds).
pub const COHORT_SIZE: usize = 20;
/// Cohort seeds live in their own range; training seeds are below [`COHORT_SEED_BASE`].
pub const COHORT_SEED_BASE: u64 = 1 << 40;

/// Seed of cohort patient `i` (1-based, as the page and the CLI number them).
pub fn cohort_seed(i: usize) -> u64 {
    COHORT_SEED_BASE + i as u64
}

/// The whole study of patient `seed` on `dims`, centred on the liver.
pub fn study(seed: u64, dims: [usize; 3]) -> Phantom {
    let patient = Patient::new(seed);
    let acq = Acquisition::new(seed);
    let grid = Grid { dims, spacing: acq.spacing, centre: [0.0, 0.0, patient.liver_z - 10.0] };
    scanner::image(&patient, &acq, &grid, seed)
}

/// Cohort patient `i` (1-based) at [`COHORT_DIMS`].
pub fn cohort_patient(i: usize) -> Phantom {
    study(cohort_seed(i), COHORT_DIMS)
}

/// A training patch of `dims` from patient `seed`: mostly around the liver (where tumours are),
/// sometimes anywhere in the abdomen (to learn what is not a tumour).
pub fn training_patch(seed: u64, dims: [usize; 3]) -> Phantom {
    assert!(seed < COHORT_SEED_BASE, "training seeds must not reach the held-out cohort");
    let patient = Patient::new(seed);
    let acq = Acquisition::new(seed);
    let mut r = SplitMix::new(seed ^ 0x7A7C_4000);
    let centre = if r.uniform() < 0.8 {
        // Prefer a lesion when there is one: tumours are a few % of a liver.
        match patient.lesions.get((r.uniform() * (patient.lesions.len() + 1) as f32) as usize) {
            Some(l) => {
                [l.centre[0] + r.symmetric(40.0), l.centre[1] + r.symmetric(40.0), l.centre[2] + r.symmetric(20.0)]
            }
            None => [35.0 + r.symmetric(50.0), r.symmetric(50.0), patient.liver_z + r.symmetric(60.0)],
        }
    } else {
        [r.symmetric(110.0), r.symmetric(80.0), patient.liver_z + r.symmetric(80.0)]
    };
    scanner::image(&patient, &acq, &Grid { dims, spacing: acq.spacing, centre }, seed)
}

impl Phantom {
    /// The study as NIfTI files, named as SegLRP names a study's parts
    /// (`t2.nii.gz` … `t1_15min.nii.gz`, `label.nii.gz`), each with the study's affine.
    pub fn nifti_files(&self, gzip: bool) -> Vec<(String, Vec<u8>)> {
        let ext = if gzip { "nii.gz" } else { "nii" };
        let mut files: Vec<(String, Vec<u8>)> = crate::io::study::FILE_STEMS
            .iter()
            .enumerate()
            .map(|(c, stem)| {
                let v = &self.volume;
                let one = Volume {
                    dims: v.dims,
                    channels: 1,
                    spacing: v.spacing,
                    affine: v.affine,
                    data: v.channel(c).to_vec(),
                };
                (format!("{stem}.{ext}"), crate::io::nifti::write_nifti(&one, gzip))
            })
            .collect();
        files.push((format!("label.{ext}"), crate::io::nifti::write_label(&self.label, &self.volume, gzip)));
        files
    }
}
