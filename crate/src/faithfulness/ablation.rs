//! Per-channel evidence beside the relevance shares: the region's score when one input channel
//! is replaced by its baseline everywhere the region's logits read, and the rank correlation of
//! those drops with the channels' relevance shares over a cohort (Chlebus et al. 2019 compared
//! shares with the Dice lost when a sequence was left out; this asks the same of each map).

use serde::Serialize;

use super::probe::{Probe, Score};

/// One channel replaced by its baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Ablation {
    pub score: Score,
    /// `(s_0 − s) / |s_0|`: the fraction of the region's summed logit lost.
    pub logit_drop: f32,
    /// `Dice_0 − Dice`.
    pub dice_drop: f32,
}

/// Each channel of the probe's window replaced by `baseline` in turn.
pub async fn ablate(
    probe: &Probe,
    baseline: &[f32],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Ablation>, String> {
    let n = probe.inside.len();
    let s0 = probe.unperturbed;
    let mut out = Vec::with_capacity(probe.channels);
    for c in 0..probe.channels {
        let mut x = probe.input.clone();
        x[c * n..(c + 1) * n].copy_from_slice(&baseline[c * n..(c + 1) * n]);
        let score = probe.score(&x).await?;
        out.push(Ablation {
            score,
            logit_drop: (s0.logit - score.logit) / s0.logit.abs().max(f32::MIN_POSITIVE),
            dice_drop: s0.dice - score.dice,
        });
        progress(c + 1, probe.channels);
    }
    Ok(out)
}

/// Ranks of `v` (1 = smallest), ties given their mean rank.
fn ranks(v: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation of `a` and `b` (Pearson's of their ranks); `None` for fewer than
/// two pairs or a constant side.
pub fn spearman(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let (ma, mb) = (mean(&ra), mean(&rb));
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| (cov / (va * vb).sqrt()) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_and_tied() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486833
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((r - 0.948_683_3).abs() < 1e-6, "{r}");
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
