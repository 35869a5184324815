//! Overlap of a predicted mask with a label.

/// Voxel counts of a prediction against a label (both 0/1, same grid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlap {
    pub both: usize,
    pub predicted: usize,
    pub labelled: usize,
}

impl Overlap {
    pub fn of(pred: &[u8], label: &[u8]) -> Overlap {
        assert_eq!(pred.len(), label.len(), "prediction and label must share a grid");
        let mut o = Overlap::default();
        for (p, l) in pred.iter().zip(label) {
            let (p, l) = (*p != 0, *l != 0);
            o.both += usize::from(p && l);
            o.predicted += usize::from(p);
            o.labelled += usize::from(l);
        }
        o
    }

    pub fn add(self, other: Overlap) -> Overlap {
        Overlap {
            both: self.both + other.both,
            predicted: self.predicted + other.predicted,
            labelled: self.labelled + other.labelled,
        }
    }

    /// 2|P∩L| / (|P| + |L|); `None` when both are empty (nothing to find, nothing found).
    pub fn dice(&self) -> Option<f32> {
        let sizes = self.predicted + self.labelled;
        (sizes > 0).then(|| 2.0 * self.both as f32 / sizes as f32)
    }
}

/// Dice of `pred` against `label`; `None` when both are empty.
pub fn dice(pred: &[u8], label: &[u8]) -> Option<f32> {
    Overlap::of(pred, label).dice()
}
