//! conv.rs's direct loop against burn's own convolution (im2col + gemm), on shapes that reach
//! every edge of the loop: widths that are not a multiple of the tile, channel counts that are
//! not a multiple of the channel block, asymmetric and zero padding, flat kernels, batches.

use burn::prelude::*;
use burn::tensor::module::{conv3d, conv_transpose3d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::TensorData;
use seglrp::backend::cpu_device;
use seglrp::ops::conv;
use seglrp::rng::SplitMix;

fn random(rng: &mut SplitMix, dims: [usize; 5], device: &Device) -> Tensor<5> {
    let n = dims.iter().product();
    Tensor::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), dims), device)
}

fn bias(rng: &mut SplitMix, n: usize, device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), [n]), device)
}

/// `x` with zeros added before and after each spatial axis (burn's conv3d pads symmetrically
/// only).
fn pad(x: &Tensor<5>, padding: [(usize, usize); 3]) -> Tensor<5> {
    let [n, c, d, h, w] = x.dims();
    let p = [d + padding[0].0 + padding[0].1, h + padding[1].0 + padding[1].1, w + padding[2].0 + padding[2].1];
    let src = x.clone().into_data().try_to_vec::<f32>().unwrap();
    let mut out = vec![0f32; n * c * p[0] * p[1] * p[2]];
    for plane in 0..n * c {
        for z in 0..d {
            for y in 0..h {
                let at = ((plane * p[0] + z + padding[0].0) * p[1] + y + padding[1].0) * p[2] + padding[2].0;
                out[at..at + w].copy_from_slice(&src[((plane * d + z) * h + y) * w..][..w]);
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [n, c, p[0], p[1], p[2]]), &x.device())
}

fn max_diff(a: Tensor<5>, b: Tensor<5>) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar::<f32>();
    ((a - b).abs().max().into_scalar::<f32>(), scale)
}

/// `(batch, in, out, [d, h, w], kernel, padding (before, after))`
type Case = (usize, usize, usize, [usize; 3], [usize; 3], [(usize, usize); 3]);

const CASES: [Case; 8] = [
    (1, 6, 8, [5, 7, 13], [3, 3, 3], [(1, 1); 3]),
    (2, 3, 5, [4, 6, 9], [3, 3, 3], [(1, 1); 3]),
    (1, 4, 9, [3, 5, 17], [3, 3, 3], [(0, 0), (1, 1), (0, 2)]),
    (1, 2, 3, [1, 6, 8], [1, 3, 3], [(0, 0), (1, 1), (1, 1)]),
    (1, 5, 4, [6, 4, 3], [3, 1, 5], [(2, 1), (0, 0), (2, 2)]),
    (1, 16, 32, [4, 4, 8], [3, 3, 3], [(1, 1); 3]),
    // Rows of three AVX2 tiles and a part, channels in three blocks and a part.
    (1, 3, 14, [3, 2, 53], [3, 3, 3], [(1, 1), (1, 1), (0, 1)]),
    // Input channels in three sweeps (8, 8 and 5), two volumes.
    (2, 21, 6, [3, 5, 11], [3, 3, 3], [(1, 1); 3]),
];

#[test]
fn the_direct_conv_equals_burns() {
    let device = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(11);
    for (n, ci, co, [d, h, w], k, padding) in CASES {
        let x = random(&mut rng, [n, ci, d, h, w], &device);
        let wt = random(&mut rng, [co, ci, k[0], k[1], k[2]], &device);
        for b in [None, Some(bias(&mut rng, co, &device))] {
            let want = conv3d(pad(&x, padding), wt.clone(), b.clone(), ConvOptions::new([1; 3], [0; 3], [1; 3], 1));
            // Every loop this CPU runs (4-lane; AVX2+FMA where the CPU has it).
            for kernel in conv::Kernel::available() {
                let got = conv::direct_with(kernel, x.clone(), wt.clone(), b.clone(), padding);
                let (diff, scale) = max_diff(got, want.clone());
                assert!(
                    scale > 0.1 && diff <= 1e-5 * scale,
                    "{} {n}×{ci}→{co} {d}×{h}×{w} k {k:?} pad {padding:?} bias {}: differs by {diff}",
                    kernel.name(),
                    b.is_some()
                );
            }
        }
    }
}

#[test]
fn the_direct_transposed_conv_equals_burns() {
    let device = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(12);
    for (n, ci, co, [d, h, w], k, padding) in CASES {
        // A transposed conv's padding is symmetric and below the kernel side.
        let p = std::array::from_fn(|i| padding[i].0.min(k[i] - 1));
        let x = random(&mut rng, [n, ci, d, h, w], &device);
        let wt = random(&mut rng, [ci, co, k[0], k[1], k[2]], &device);
        for b in [None, Some(bias(&mut rng, co, &device))] {
            let want = conv_transpose3d(
                x.clone(),
                wt.clone(),
                b.clone(),
                ConvTransposeOptions::new([1; 3], p, [0; 3], [1; 3], 1),
            );
            let got = conv::transposed(x.clone(), wt.clone(), b.clone(), p);
            let (diff, scale) = max_diff(got, want);
            assert!(
                scale > 0.1 && diff <= 1e-5 * scale,
                "{n}×{ci}→{co} {d}×{h}×{w} k {k:?} pad {p:?}: differs by {diff}"
            );
        }
    }
}

/// The up-sampling transposed conv (kernel = stride, unpadded) as one matrix product equals
/// burn's transposed conv: cubic and anisotropic blocks (nnU-Net's first up-sampling of
/// anisotropic data is 1×2×2), with and without a bias, two volumes.
#[test]
fn the_blockwise_transposed_conv_equals_burns() {
    let device = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(13);
    for (ci, co, [d, h, w], k) in
        [(5, 3, [3, 4, 5], [2, 2, 2]), (4, 6, [2, 3, 3], [1, 2, 2]), (3, 2, [2, 2, 3], [3, 1, 2])]
    {
        let x = random(&mut rng, [2, ci, d, h, w], &device);
        let wt = random(&mut rng, [ci, co, k[0], k[1], k[2]], &device);
        for b in [None, Some(bias(&mut rng, co, &device))] {
            let want = conv_transpose3d(
                x.clone(),
                wt.clone(),
                b.clone(),
                ConvTransposeOptions::new(k, [0; 3], [0; 3], [1; 3], 1),
            );
            let (diff, scale) = max_diff(conv::blockwise(x.clone(), wt.clone(), b.clone()), want);
            assert!(scale > 0.1 && diff <= 1e-5 * scale, "{ci}→{co} k {k:?} bias {}: differs by {diff}", b.is_some());
        }
    }
}
