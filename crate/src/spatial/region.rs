//! Regions to explain: sets of output voxels picked from a segmentation, as masks in file order
//! (x fastest). The maps themselves are computed by `lrp::region_map`.

use std::collections::VecDeque;

use serde::Serialize;

/// The 6-connected component of `mask` (non-zero voxels) that contains `start`, or `None` when
/// that voxel is not in the mask. `dims` = `[nx, ny, nz]`.
pub fn component(mask: &[u8], dims: [usize; 3], start: [usize; 3]) -> Option<Vec<u8>> {
    let [nx, ny, nz] = dims;
    let index = |[x, y, z]: [usize; 3]| x + nx * (y + ny * z);
    if start.iter().zip(&dims).any(|(s, d)| s >= d) || mask[index(start)] == 0 {
        return None;
    }
    let mut out = vec![0u8; mask.len()];
    let mut queue = VecDeque::from([start]);
    out[index(start)] = 1;
    while let Some([x, y, z]) = queue.pop_front() {
        let neighbours = [
            (x > 0).then(|| [x - 1, y, z]),
            (x + 1 < nx).then(|| [x + 1, y, z]),
            (y > 0).then(|| [x, y - 1, z]),
            (y + 1 < ny).then(|| [x, y + 1, z]),
            (z > 0).then(|| [x, y, z - 1]),
            (z + 1 < nz).then(|| [x, y, z + 1]),
        ];
        for v in neighbours.into_iter().flatten() {
            let i = index(v);
            if mask[i] != 0 && out[i] == 0 {
                out[i] = 1;
                queue.push_back(v);
            }
        }
    }
    Some(out)
}

/// Which output voxels to explain, in the terms a user picks them (page panel, `seglrp explain
/// --region`, `seglrp cohort --regions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The predicted tumour's connected component holding this voxel `[x, y, z]`.
    Component([usize; 3]),
    /// All predicted tumour: the "foreground" region of Chlebus et al. 2019.
    AllPredicted,
    /// Predicted and labelled tumour.
    TruePositive,
    /// Labelled tumour the model missed.
    FalseNegative,
    /// Predicted tumour the label does not have.
    FalsePositive,
    /// The voxels of a box, `[x0, y0, z0, x1, y1, z1]`, start inclusive, end exclusive.
    Box([usize; 6]),
    /// A mask the user drew or brought (non-zero = in the region).
    Mask(Vec<u8>),
}

/// A region the page offers to explain: its name (sent back to `explain_region`), the menu's
/// words, and what it needs first ("label": a label file; "drawing": a drawn region).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Scope {
    pub name: &'static str,
    pub label: &'static str,
    pub needs: Option<&'static str>,
}

/// The page's regions, in menu order: one voxel, a tumour component, all predicted tumour, a
/// drawn region, and the label's true positives, false negatives and false positives.
pub const SCOPES: [Scope; 7] = [
    Scope { name: "voxel", label: "the voxel at the crosshair", needs: None },
    Scope { name: "component", label: "the tumour at the crosshair (connected region)", needs: None },
    Scope { name: "all", label: "all predicted tumour", needs: None },
    Scope { name: "drawn", label: "the drawn region", needs: Some("drawing") },
    Scope { name: "tp", label: "true positives", needs: Some("label") },
    Scope { name: "fn", label: "false negatives", needs: Some("label") },
    Scope { name: "fp", label: "false positives", needs: Some("label") },
];

impl Selection {
    /// Why there is nothing to explain when this region is empty, and what to do instead.
    pub fn empty_message(&self) -> &'static str {
        match self {
            Selection::Component(_) | Selection::AllPredicted => {
                "there is no predicted tumour there: click inside the red region, or explain single voxels"
            }
            Selection::TruePositive => {
                "the prediction and the label share no voxel: there are no true positives to explain"
            }
            Selection::FalseNegative => {
                "the prediction misses none of the label's tumour: there are no false negatives to explain"
            }
            Selection::FalsePositive => {
                "every predicted tumour voxel is in the label: there are no false positives to explain"
            }
            Selection::Mask(_) => "the region is empty: draw a region (or give a mask with voxels in it) first",
            Selection::Box(_) => "the box holds no voxel: give a box with x0 < x1, y0 < y1, z0 < z1 inside the study",
        }
    }

    /// The names `parse` reads (box and mask carry data and are given separately).
    pub const NAMES: [&'static str; 5] = ["all", "tp", "fn", "fp", "component"];

    /// "all", "tp", "fn" or "fp" (what a cohort run can pick without a voxel).
    pub fn parse(name: &str) -> Result<Selection, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Selection::AllPredicted),
            "tp" => Ok(Selection::TruePositive),
            "fn" => Ok(Selection::FalseNegative),
            "fp" => Ok(Selection::FalsePositive),
            other => Err(format!(
                "unknown region \"{other}\": choose all (predicted tumour), tp, fn or fp (against the label)"
            )),
        }
    }

    /// Short name for file names and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Selection::Component(_) => "component",
            Selection::AllPredicted => "all",
            Selection::TruePositive => "tp",
            Selection::FalseNegative => "fn",
            Selection::FalsePositive => "fp",
            Selection::Box(_) => "box",
            Selection::Mask(_) => "mask",
        }
    }

    pub fn needs_label(&self) -> bool {
        matches!(self, Selection::TruePositive | Selection::FalseNegative | Selection::FalsePositive)
    }

    /// [`Selection::mask`] among the voxels predicted, or labelled, as `class` (`pred` and
    /// `label` hold class indices); for class 0 (background) among any foreground, so that
    /// the background's logit is explained over the tumour, as Chlebus et al. 2019 did.
    pub fn mask_of_class(
        &self,
        pred: &[u8],
        label: Option<&[u8]>,
        class: usize,
        dims: [usize; 3],
    ) -> Result<Vec<u8>, String> {
        if class == 0 {
            return self.mask(pred, label, dims);
        }
        let of = |m: &[u8]| m.iter().map(|v| u8::from(*v as usize == class)).collect::<Vec<u8>>();
        self.mask(&of(pred), label.map(of).as_deref(), dims)
    }

    /// The region for `class`, or for each voxel's own class (`None`, "all foreground"): then each
    /// voxel of [`Selection::mask`] among any foreground holds the class it is explained for —
    /// its predicted class, or for a voxel predicted as background (a false negative) its
    /// labelled one — and 0 outside.
    pub fn classes_of(
        &self,
        pred: &[u8],
        label: Option<&[u8]>,
        class: Option<usize>,
        dims: [usize; 3],
    ) -> Result<Vec<u8>, String> {
        if let Some(c) = class {
            return self.mask_of_class(pred, label, c, dims);
        }
        let m = self.mask(pred, label, dims)?;
        let own = |i: usize| if pred[i] != 0 { pred[i] } else { label.map_or(0, |l| l[i]) };
        Ok(m.iter().enumerate().map(|(i, &inside)| if inside == 0 { 0 } else { own(i) }).collect())
    }

    /// The region as a mask (file order, 1 = in), from the prediction `pred` and the optional
    /// `label` on a grid of `dims`. An empty region is `Ok` (a patient without false negatives
    /// is a result, not an error); a region that cannot be formed is an error in words.
    pub fn mask(&self, pred: &[u8], label: Option<&[u8]>, dims: [usize; 3]) -> Result<Vec<u8>, String> {
        let n = dims.iter().product::<usize>();
        let both = |f: fn(bool, bool) -> bool| -> Result<Vec<u8>, String> {
            let label = label.ok_or_else(|| {
                format!("the region \"{}\" compares with the tumour label, and this study has none", self.name())
            })?;
            Ok(pred.iter().zip(label).map(|(p, l)| u8::from(f(*p != 0, *l != 0))).collect())
        };
        match self {
            Selection::Component(at) => component(pred, dims, *at).ok_or_else(|| {
                format!("voxel {at:?} is not in the predicted tumour, so it has no tumour component to explain")
            }),
            Selection::AllPredicted => Ok(pred.iter().map(|p| u8::from(*p != 0)).collect()),
            Selection::TruePositive => both(|p, l| p && l),
            Selection::FalseNegative => both(|p, l| !p && l),
            Selection::FalsePositive => both(|p, l| p && !l),
            Selection::Box([x0, y0, z0, x1, y1, z1]) => {
                let [nx, ny, nz] = dims;
                if x0 >= x1 || y0 >= y1 || z0 >= z1 || *x1 > nx || *y1 > ny || *z1 > nz {
                    return Err(format!(
                        "the box {x0},{y0},{z0},{x1},{y1},{z1} must lie inside {nx}×{ny}×{nz} and not be empty"
                    ));
                }
                let mut m = vec![0u8; n];
                for z in *z0..*z1 {
                    for y in *y0..*y1 {
                        m[x0 + nx * (y + ny * z)..x1 + nx * (y + ny * z)].fill(1);
                    }
                }
                Ok(m)
            }
            Selection::Mask(m) if m.len() != n => Err(format!("the region mask has {} voxels, the study {n}", m.len())),
            Selection::Mask(m) => Ok(m.iter().map(|v| u8::from(*v != 0)).collect()),
        }
    }
}

/// The 6-connected components of `mask`: a component number per voxel (0 outside, 1.. in
/// order of first voxel) and each component's size.
pub fn components(mask: &[u8], dims: [usize; 3]) -> (Vec<u32>, Vec<usize>) {
    let [nx, ny, _] = dims;
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    for start in 0..mask.len() {
        if mask[start] == 0 || labels[start] != 0 {
            continue;
        }
        let voxel = [start % nx, (start / nx) % ny, start / (nx * ny)];
        let c = component(mask, dims, voxel).expect("the voxel is in the mask");
        sizes.push(0);
        let id = sizes.len() as u32;
        for (i, _) in c.iter().enumerate().filter(|(_, v)| **v != 0) {
            labels[i] = id;
            sizes[id as usize - 1] += 1;
        }
    }
    (labels, sizes)
}

/// Centre of mass of a mask `[x, y, z]` in voxels, `None` for an empty mask.
pub fn centroid(mask: &[u8], dims: [usize; 3]) -> Option<[f64; 3]> {
    let [nx, ny, _] = dims;
    let (mut s, mut n) = ([0f64; 3], 0usize);
    for (i, _) in mask.iter().enumerate().filter(|(_, v)| **v != 0) {
        let p = [i % nx, (i / nx) % ny, i / (nx * ny)];
        for k in 0..3 {
            s[k] += p[k] as f64;
        }
        n += 1;
    }
    (n > 0).then(|| s.map(|v| v / n as f64))
}

/// The axial slice through the region's centre. A region of several pieces is shown through
/// its largest piece: the centroid of two tumours lies between them, on a slice that may hold
/// neither.
pub fn centre_slice(mask: &[u8], dims: [usize; 3]) -> Option<usize> {
    let (labels, sizes) = components(mask, dims);
    let largest = sizes.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))?.0 as u32 + 1;
    let piece: Vec<u8> = labels.iter().map(|l| u8::from(*l == largest)).collect();
    let [nx, ny, nz] = dims;
    let mask = &piece[..];
    let c = centroid(mask, dims)?[2].round() as usize;
    let has = |z: usize| mask[z * nx * ny..(z + 1) * nx * ny].iter().any(|v| *v != 0);
    (0..nz).filter(|z| has(*z)).min_by_key(|z| z.abs_diff(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_is_understood() {
        for scope in SCOPES {
            match scope.name {
                // Picked by the crosshair or drawn in the page, not by name.
                "voxel" | "component" | "drawn" => {}
                name => assert_eq!(Selection::parse(name).unwrap().name(), name),
            }
            assert_eq!(scope.needs == Some("label"), Selection::parse(scope.name).is_ok_and(|s| s.needs_label()));
        }
    }

    #[test]
    fn flood_fill_stays_in_its_component() {
        // Two blobs in a 4×3×2 grid, touching only diagonally.
        let dims = [4, 3, 2];
        let mut mask = vec![0u8; 24];
        for i in [0usize, 1, 4, 12] {
            mask[i] = 1; // (0,0,0) (1,0,0) (0,1,0) (0,0,1)
        }
        mask[5 + 4] = 1; // (1,2,0): diagonal to (0,1,0), not connected
        let c = component(&mask, dims, [1, 0, 0]).unwrap();
        assert_eq!(c.iter().filter(|v| **v == 1).count(), 4);
        assert_eq!(c[9], 0);
        assert_eq!(component(&mask, dims, [1, 2, 0]).unwrap().iter().filter(|v| **v == 1).count(), 1);
        assert!(component(&mask, dims, [3, 2, 1]).is_none());
        assert!(component(&mask, dims, [4, 0, 0]).is_none());
    }

    #[test]
    fn selections_follow_prediction_and_label() {
        let dims = [3, 2, 1];
        let pred = [1, 1, 0, 0, 1, 0];
        let label = [1, 0, 1, 0, 1, 0];
        let count = |s: Selection| s.mask(&pred, Some(&label), dims).unwrap();
        assert_eq!(count(Selection::AllPredicted), vec![1, 1, 0, 0, 1, 0]);
        assert_eq!(count(Selection::TruePositive), vec![1, 0, 0, 0, 1, 0]);
        assert_eq!(count(Selection::FalseNegative), vec![0, 0, 1, 0, 0, 0]);
        assert_eq!(count(Selection::FalsePositive), vec![0, 1, 0, 0, 0, 0]);
        assert_eq!(count(Selection::Box([1, 0, 0, 3, 2, 1])), vec![0, 1, 1, 0, 1, 1]);
        assert_eq!(count(Selection::Component([0, 0, 0])), vec![1, 1, 0, 0, 1, 0]);
        let e = Selection::TruePositive.mask(&pred, None, dims).unwrap_err();
        assert!(e.contains("has none"), "{e}");
        assert!(Selection::Component([2, 0, 0])
            .mask(&pred, None, dims)
            .unwrap_err()
            .contains("not in the predicted tumour"));
        assert!(Selection::Box([0, 0, 0, 4, 1, 1]).mask(&pred, None, dims).is_err());
        assert!(Selection::Mask(vec![1; 5]).mask(&pred, None, dims).is_err());
        for name in ["all", "TP", "fn", "fp"] {
            assert_eq!(Selection::parse(name).unwrap().name(), name.to_ascii_lowercase());
        }
        assert!(Selection::parse("tumour").unwrap_err().contains("choose all"));
    }

    #[test]
    fn regions_of_a_class_among_several() {
        let dims = [3, 2, 1];
        let pred = [2, 1, 0, 2, 2, 1];
        let label = [2, 2, 1, 0, 2, 1];
        let of = |s: Selection, class| s.mask_of_class(&pred, Some(&label), class, dims).unwrap();
        assert_eq!(of(Selection::AllPredicted, 2), vec![1, 0, 0, 1, 1, 0]);
        assert_eq!(of(Selection::AllPredicted, 1), vec![0, 1, 0, 0, 0, 1]);
        // Class 0: the background's logit over any foreground.
        assert_eq!(of(Selection::AllPredicted, 0), vec![1, 1, 0, 1, 1, 1]);
        assert_eq!(of(Selection::TruePositive, 2), vec![1, 0, 0, 0, 1, 0]);
        assert_eq!(of(Selection::FalseNegative, 1), vec![0, 0, 1, 0, 0, 0]);
        assert_eq!(of(Selection::FalsePositive, 1), vec![0, 1, 0, 0, 0, 0]);
        // (0,0,0) and (0,1,0) are class 2 and face neighbours; (1,1,0) joins them.
        assert_eq!(of(Selection::Component([0, 0, 0]), 2), vec![1, 0, 0, 1, 1, 0]);
        assert!(Selection::Component([1, 0, 0]).mask_of_class(&pred, None, 2, dims).is_err());
    }

    #[test]
    fn the_centre_slice_holds_the_region() {
        let dims = [2, 1, 5];
        // Two pieces, in slices 0 and 4: the centroid's slice (3) is empty, the larger piece is in 4.
        let mask = [1, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        assert_eq!(centroid(&mask, dims), Some([1.0 / 3.0, 0.0, 8.0 / 3.0]));
        assert_eq!(centre_slice(&mask, dims), Some(4));
        // Pieces of 2 (slice 0) and 4 voxels (slices 3, 4): the whole region's centroid (z 2.33)
        // would give slice 2 (empty) or its nearest, 3; the larger piece's centre is 3.5 → 4.
        let unequal = [1, 1, 0, 0, 0, 0, 1, 1, 1, 1];
        assert_eq!(centre_slice(&unequal, dims), Some(4));
        assert_eq!(centre_slice(&[0; 10], dims), None);
        let (labels, sizes) = components(&mask, dims);
        assert_eq!(sizes, vec![1, 2]);
        assert_eq!(labels, vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 2]);
    }
}
