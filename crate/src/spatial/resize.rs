//! Resampling a volume to another shape over the same field of view, as nnU-Net does it
//! (`resample_data_or_seg_to_shape`): scikit-image's `resize` (`scipy.ndimage.zoom` with
//! `grid_mode=True`, edge values repeated, no anti-aliasing, the result clipped to the input's
//! range) with B-splines of order 0, 1 or 3, and, where the spacing is anisotropic, the low
//! resolution axis resampled on its own with its own order (`order_z`, nearest by default).
//!
//! Written here rather than taken from a crate because nnU-Net's numbers are the reference: a
//! segmentation explained by SegLRP must be the one nnU-Net's predictor gives, and no Rust
//! crate reproduces scipy's spline prefilter and edge handling. Every axis is resampled on its
//! own: scipy's tensor-product splines are separable, so the result is the same (checked against
//! scipy in tests/graph_parity.py).

pub use crate::model::card::Resampling;

/// nnU-Net's `ANISO_THRESHOLD`.
pub const ANISOTROPY: f64 = 3.0;

/// nnU-Net's `compute_new_shape`: each side scaled by old/new spacing, rounded.
pub fn new_shape(shape: [usize; 3], spacing: [f64; 3], target: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|i| ((spacing[i] / target[i] * shape[i] as f64).round_ties_even() as usize).max(1))
}

/// The axis resampled on its own, if any (`determine_do_sep_z_and_axis`): the one whose spacing
/// is the largest, where it is the only largest.
fn separate_axis(force: Option<bool>, current: [f64; 3], new: [f64; 3]) -> Option<usize> {
    let anisotropic = |s: [f64; 3]| {
        let (max, min) = s.iter().fold((f64::MIN, f64::MAX), |(a, b), v| (a.max(*v), b.min(*v)));
        max / min > ANISOTROPY
    };
    let lowres = |s: [f64; 3]| {
        let max = s.iter().copied().fold(f64::MIN, f64::max);
        let axes: Vec<usize> = (0..3).filter(|&i| max / s[i] == 1.0).collect();
        (axes.len() == 1).then(|| axes[0])
    };
    match force {
        Some(true) => lowres(current),
        Some(false) => None,
        None if anisotropic(current) => lowres(current),
        None if anisotropic(new) => lowres(new),
        None => None,
    }
}

/// `channels` volumes of `dims` (`[nx, ny, nz]`, x fastest) resampled to `to`; `spacing` and
/// `target` (mm, `[x, y, z]`) decide only whether one axis is resampled on its own.
pub fn resize(
    data: &[f32],
    channels: usize,
    dims: [usize; 3],
    to: [usize; 3],
    spacing: [f64; 3],
    target: [f64; 3],
    how: Resampling,
) -> Vec<f32> {
    if dims == to {
        return data.to_vec();
    }
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(channels * to.iter().product::<usize>());
    for c in 0..channels {
        let channel: Vec<f64> = data[c * n..(c + 1) * n].iter().map(|v| *v as f64).collect();
        let resized = match separate_axis(how.force_separate_z, spacing, target) {
            Some(axis) => {
                // In-plane per slice (scikit-image clips each slice to its own range), then the
                // low-resolution axis with order_z and no clipping (scipy's map_coordinates).
                let plane: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
                let (mut v, mut d) = (channel, dims);
                let ranges = slice_ranges(&v, d, axis);
                for &a in &plane {
                    (v, d) = along(&v, d, a, to[a], how.order);
                }
                if how.order > 1 {
                    clip_slices(&mut v, d, axis, &ranges);
                }
                (v, _) = along(&v, d, axis, to[axis], how.order_z);
                v
            }
            None => {
                let (lo, hi) = channel.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
                let (mut v, mut d) = (channel, dims);
                for a in 0..3 {
                    (v, d) = along(&v, d, a, to[a], how.order);
                }
                if how.order > 1 {
                    v.iter_mut().for_each(|x| *x = x.clamp(lo, hi));
                }
                v
            }
        };
        out.extend(resized.iter().map(|v| *v as f32));
    }
    out
}

/// Lowest and highest value of each slice across `axis`.
fn slice_ranges(v: &[f64], dims: [usize; 3], axis: usize) -> Vec<(f64, f64)> {
    let mut r = vec![(f64::MAX, f64::MIN); dims[axis]];
    for (i, x) in v.iter().enumerate() {
        let k = [i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1])][axis];
        r[k] = (r[k].0.min(*x), r[k].1.max(*x));
    }
    r
}

fn clip_slices(v: &mut [f64], dims: [usize; 3], axis: usize, ranges: &[(f64, f64)]) {
    for (i, x) in v.iter_mut().enumerate() {
        let k = [i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1])][axis];
        *x = x.clamp(ranges[k].0, ranges[k].1);
    }
}

/// `v` (of `dims`) resampled along `axis` to `len` samples.
fn along(v: &[f64], dims: [usize; 3], axis: usize, len: usize, order: usize) -> (Vec<f64>, [usize; 3]) {
    let n = dims[axis];
    if n == len {
        return (v.to_vec(), dims);
    }
    let mut to = dims;
    to[axis] = len;
    let stride = [1, dims[0], dims[0] * dims[1]][axis];
    let out_stride = [1, to[0], to[0] * to[1]][axis];
    let lines = Line::new(n, len, order);
    let mut out = vec![0f64; to.iter().product()];
    let (mut src, mut dst) = (vec![0f64; n], vec![0f64; len]);
    // Every line along `axis`: its start in the input and in the output.
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    for j in 0..dims[others[1]] {
        for i in 0..dims[others[0]] {
            let mut at = [0usize; 3];
            at[others[0]] = i;
            at[others[1]] = j;
            let start = at[0] + dims[0] * (at[1] + dims[1] * at[2]);
            let out_start = at[0] + to[0] * (at[1] + to[1] * at[2]);
            for (k, s) in src.iter_mut().enumerate() {
                *s = v[start + k * stride];
            }
            lines.resample(&src, &mut dst);
            for (k, d) in dst.iter().enumerate() {
                out[out_start + k * out_stride] = *d;
            }
        }
    }
    (out, to)
}

/// Margin scipy adds (edge values) before the spline prefilter, so that the prefilter's own
/// boundary condition does not reach the data.
const PAD: usize = 12;

/// Resampling of lines of `n` samples to `len`: where each output sample falls in the input.
struct Line {
    n: usize,
    order: usize,
    /// Input coordinate of each output sample (centres aligned: `(i + ½)·n/len − ½`).
    at: Vec<f64>,
}

impl Line {
    fn new(n: usize, len: usize, order: usize) -> Line {
        let zoom = n as f64 / len as f64;
        Line { n, order, at: (0..len).map(|i| (i as f64 + 0.5) * zoom - 0.5).collect() }
    }

    fn resample(&self, f: &[f64], out: &mut [f64]) {
        let last = self.n as isize - 1;
        let get = |i: isize| f[i.clamp(0, last) as usize];
        match self.order {
            0 => {
                for (o, x) in out.iter_mut().zip(&self.at) {
                    *o = get((x + 0.5).floor() as isize);
                }
            }
            1 => {
                for (o, x) in out.iter_mut().zip(&self.at) {
                    let i = x.floor();
                    let t = x - i;
                    *o = get(i as isize) * (1.0 - t) + get(i as isize + 1) * t;
                }
            }
            _ => {
                let c = cubic_coefficients(f);
                let last = c.len() as isize - 1;
                for (o, x) in out.iter_mut().zip(&self.at) {
                    let x = x + PAD as f64;
                    let i = x.floor();
                    let t = x - i;
                    let w = [
                        (1.0 - t).powi(3) / 6.0,
                        (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0,
                        (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t * t * t) / 6.0,
                        t * t * t / 6.0,
                    ];
                    *o = (0..4).map(|k| w[k] * c[(i as isize - 1 + k as isize).clamp(0, last) as usize]).sum();
                }
            }
        }
    }
}

/// Cubic B-spline coefficients of `f` padded by [`PAD`] edge values on each side (scipy's
/// `spline_filter1d` on the padded line: gain 6, pole √3 − 2, mirror boundaries).
fn cubic_coefficients(f: &[f64]) -> Vec<f64> {
    let mut c: Vec<f64> = std::iter::repeat_n(f[0], PAD)
        .chain(f.iter().copied())
        .chain(std::iter::repeat_n(f[f.len() - 1], PAD))
        .map(|v| v * 6.0)
        .collect();
    let n = c.len();
    let z = 3f64.sqrt() - 2.0;
    // Causal initialisation for mirror boundaries (scipy's `_init_causal_mirror`).
    let zn = z.powi(n as i32 - 1);
    let mut zi = z;
    let mut c0 = c[0] + zn * c[n - 1];
    for i in 1..n - 1 {
        c0 += zi * (c[i] + zn * c[n - 1 - i]);
        zi *= z;
    }
    c[0] = c0 / (1.0 - zn * zn);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_samples_between_centres_and_repeats_edges() {
        // 4 → 2: centres at 0.5 and 2.5; 2 → 4: −0.25 (edge), 0.25, 0.75, 1.25 (edge).
        let (v, _) = along(&[0.0, 1.0, 2.0, 3.0], [4, 1, 1], 0, 2, 1);
        assert_eq!(v, vec![0.5, 2.5]);
        let (v, _) = along(&[0.0, 4.0], [2, 1, 1], 0, 4, 1);
        assert_eq!(v, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn cubic_reproduces_its_samples_and_polynomials() {
        // An interpolating spline: the same grid gives the samples back; a quadratic is
        // reproduced away from the edges (the repeated edge values' kink fades as (√3 − 2)^d).
        let f: Vec<f64> = (0..20).map(|i| (i as f64 * 0.3).sin()).collect();
        let line = Line { n: 20, order: 3, at: (0..20).map(|i| i as f64).collect() };
        let mut out = vec![0.0; 20];
        line.resample(&f, &mut out);
        for (a, b) in out.iter().zip(&f) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let q: Vec<f64> = (0..40).map(|i| (i as f64 - 20.0).powi(2) / 10.0).collect();
        let (v, _) = along(&q, [40, 1, 1], 0, 80, 3);
        for (i, got) in v.iter().enumerate().take(50).skip(30) {
            let x = (i as f64 + 0.5) * 0.5 - 0.5;
            let want = (x - 20.0).powi(2) / 10.0;
            assert!((got - want).abs() < 1e-6, "at {x}: {got} vs {want}");
        }
    }

    #[test]
    fn anisotropic_spacing_resamples_the_coarse_axis_nearest() {
        assert_eq!(separate_axis(None, [1.0, 1.0, 4.0], [1.0, 1.0, 1.0]), Some(2));
        assert_eq!(separate_axis(None, [1.0, 1.0, 2.0], [1.0, 1.0, 1.0]), None);
        assert_eq!(separate_axis(None, [4.0, 4.0, 1.0], [1.0, 1.0, 1.0]), None, "two coarsest axes");
        assert_eq!(new_shape([10, 10, 5], [1.0, 1.0, 3.0], [2.0, 2.0, 1.5]), [5, 5, 10]);
        // z resampled nearest: every output slice is one of the input's.
        let data: Vec<f32> = (0..2 * 2 * 3).map(|i| (i / 4) as f32).collect();
        let how = Resampling { order: 3, order_z: 0, force_separate_z: None };
        let out = resize(&data, 1, [2, 2, 3], [2, 2, 12], [1.0, 1.0, 4.0], [1.0, 1.0, 1.0], how);
        let slices: Vec<f32> = out.chunks(4).map(|s| s[0]).collect();
        assert_eq!(slices, vec![0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
    }
}
