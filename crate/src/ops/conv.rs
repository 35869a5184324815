//! Stride-1 3-D convolutions on the CPU, computed directly instead of through burn-flex's
//! im2col + matrix product; everything else goes to burn.
//!
//! Why: this U-Net has few channels (6–32) on large volumes. burn-flex turns each conv into a
//! matrix product over an im2col copy that holds every input voxel once per kernel tap (27
//! times); with 8 channels that copying, not the arithmetic, is the cost. The loop below keeps
//! a tile of [`L`] neighbouring output voxels × [`OB`] output channels in registers and reads
//! the input where it lies (padded once), so the arithmetic is the cost
//! (`cargo bench -p seglrp --bench conv` prints both; docs/performance.md).
//!
//! Stride-1 transposed convs are stride-1 convs with the kernel mirrored and the channel axes
//! swapped, so the relevance passes (`lrp/rules.rs`, `Wᵀ`) use the same loop. Strided, dilated,
//! grouped and 1×1×1 convs, GPU devices and autodiff (training) take burn's own convolution;
//! off the CPU, stride-1 transposed convs become burn's forward conv the same way, and the
//! up-sampling ones (kernel = stride) one matrix product ([`blockwise`]).
//!
//! The loop comes in two widths, chosen when the program runs ([`Kernel`]): 8-lane AVX2 with
//! fused multiply-adds where the x86-64 CPU has them (every x86-64 CPU since 2013–2015), and
//! 4-lane vectors everywhere else (SSE, NEON, wasm simd128: `wide`). One binary serves both.
//! In wasm a module cannot hold instructions its browser lacks, so the 4-lane loop with
//! relaxed-SIMD multiply-adds (fused where the CPU can) is a build of its own (feature
//! `wasm-relaxed-simd`, `www/pkg-threads-relaxed`), which the page loads where the browser
//! validates relaxed SIMD.

use burn::nn::conv::Conv3d;
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::TensorData;
use wide::f32x4;

/// Output voxels along x per tile of the portable loop (two 4-lane registers).
const L: usize = 8;
/// Output channels per tile (both loops: the weights are laid out for it).
const OB: usize = 4;

/// Which loop runs the direct convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// 4-lane vectors (`wide`): SSE, NEON or wasm simd128; every machine.
    Portable,
    /// 8-lane AVX2 vectors with fused multiply-adds (x86-64 CPUs that have both).
    Avx2Fma,
    /// 4-lane wasm vectors with relaxed-SIMD multiply-adds: builds for browsers with relaxed
    /// SIMD only (the engine fuses them where the CPU has FMA).
    RelaxedSimd,
}

impl Kernel {
    /// The loops this CPU can run, widest last.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    pub fn available() -> Vec<Kernel> {
        let mut v = vec![Kernel::Portable];
        #[cfg(all(target_arch = "wasm32", feature = "wasm-relaxed-simd"))]
        v.push(Kernel::RelaxedSimd);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            v.push(Kernel::Avx2Fma);
        }
        v
    }

    /// The widest loop this CPU runs; `SEGLRP_KERNEL=portable` forces the 4-lane one (for
    /// comparisons). Detected once.
    pub fn detected() -> Kernel {
        static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| {
            let forced = std::env::var("SEGLRP_KERNEL").is_ok_and(|k| k == "portable");
            if forced {
                Kernel::Portable
            } else {
                *Kernel::available().last().expect("the portable kernel")
            }
        })
    }

    /// The name the benchmarks print.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "4-lane",
            Kernel::Avx2Fma => "AVX2+FMA",
            Kernel::RelaxedSimd => "relaxed-SIMD FMA",
        }
    }

    /// Output voxels along x per tile.
    fn tile(self) -> usize {
        match self {
            Kernel::Portable => L,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => avx2::L,
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2Fma => unreachable!("AVX2 is x86-64 only"),
            Kernel::RelaxedSimd => L,
        }
    }
}

/// Symmetric padding of a Conv3d.
pub fn conv_padding(conv: &Conv3d) -> [usize; 3] {
    match conv.padding {
        PaddingConfig3d::Explicit(d, h, w) => [d, h, w],
        PaddingConfig3d::Valid => [0; 3],
        // "Same" with stride 1 and odd kernels is k/2 on each side.
        PaddingConfig3d::Same => conv.kernel_size.map(|k| k / 2),
    }
}

/// The module's forward pass through [`conv3d`].
pub fn forward(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    let options = ConvOptions::new(conv.stride, conv_padding(conv), conv.dilation, conv.groups);
    conv3d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

/// burn's `conv3d`, with stride-1 convs on the CPU done by [`direct`].
pub fn conv3d(x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>, options: ConvOptions<3>) -> Tensor<5> {
    let padding = options.padding;
    if direct_applies(&x, &w, options.stride, options.dilation, options.groups)
        && (0..3).all(|i| x.dims()[i + 2] + padding[i].0 + padding[i].1 >= w.dims()[i + 2])
    {
        return direct(x, w, b, padding);
    }
    in_slabs(x, w, b, options)
}

/// Bytes of burn's im2col copy a convolution may make at once; larger ones run in slabs.
const IM2COL_BYTES: usize = 256 << 20;

/// burn's `conv3d` on slabs of output planes (along d) whose im2col copy (every output voxel
/// times the kernel's taps and input channels) stays under [`IM2COL_BYTES`]: the strided
/// down-sampling convs of an nnU-Net at 128³ would otherwise copy ~0.9 GiB at once. Each slab
/// reads the input planes its outputs need, zero planes standing for the padding at the ends.
fn in_slabs(x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>, options: ConvOptions<3>) -> Tensor<5> {
    let [n, c, d, h, wd] = x.dims();
    let [_, cin, kd, kh, kw] = w.dims();
    let (s, dil, (before, after)) = (options.stride, options.dilation, options.padding[0]);
    let span = dil[0] * (kd - 1) + 1;
    let out = |len: usize, k: usize| {
        (len + options.padding[k].0 + options.padding[k].1 - (dil[k] * (w.dims()[k + 2] - 1) + 1)) / s[k] + 1
    };
    let (out_d, plane) = (out(d, 0), out(h, 1) * out(wd, 2));
    let per_plane = n * plane * cin * options.groups * kd * kh * kw * 4;
    let planes = (IM2COL_BYTES / per_plane.max(1)).max(1);
    if planes >= out_d || d + before + after < span {
        return burn::tensor::module::conv3d(x, w, b, options);
    }
    let device = x.device();
    let mut slab_options = options.clone();
    slab_options.padding[0] = (0, 0);
    let parts: Vec<Tensor<5>> = (0..out_d)
        .step_by(planes)
        .map(|o0| {
            let o1 = (o0 + planes).min(out_d);
            // Input planes [lo, hi) of the padded input, as planes of the unpadded one.
            let (lo, hi) =
                ((o0 * s[0]) as isize - before as isize, ((o1 - 1) * s[0] + span) as isize - before as isize);
            let (a, z) = (lo.max(0) as usize, (hi.min(d as isize)) as usize);
            let mut slab = vec![x.clone().slice([0..n, 0..c, a..z, 0..h, 0..wd])];
            if lo < 0 {
                slab.insert(0, Tensor::zeros([n, c, (-lo) as usize, h, wd], &device));
            }
            if hi > d as isize {
                slab.push(Tensor::zeros([n, c, hi as usize - d, h, wd], &device));
            }
            let slab = if slab.len() == 1 { slab.pop().expect("one") } else { Tensor::cat(slab, 2) };
            burn::tensor::module::conv3d(slab, w.clone(), b.clone(), slab_options.clone())
        })
        .collect();
    Tensor::cat(parts, 2)
}

/// burn's `conv_transpose3d`, with stride-1 ones done as the convs they are: the transpose of a
/// stride-1 conv with padding `p` is the conv with the mirrored kernel (`[in, out]` channels
/// read as `[out, in]`) and padding `k − 1 − p`. On the CPU that conv is [`direct`]; elsewhere
/// it is burn's `conv3d`, whose GPU kernels (and autotuned implicit GEMM) beat burn-cubecl's
/// transposed-conv kernel, which loops over every tap and input channel per output voxel:
/// measured on lavapipe (`cargo bench --bench gpu -- --timed`), 97 % of a click's device time
/// was that kernel, at twice the time per launch of the forward conv of the same size. LRP's
/// backward steps are these transposes.
pub fn conv_transpose3d(
    x: Tensor<5>,
    w: Tensor<5>,
    b: Option<Tensor<1>>,
    options: ConvTransposeOptions<3>,
) -> Tensor<5> {
    let k = [w.dims()[2], w.dims()[3], w.dims()[4]];
    let stride_one = options.stride == [1; 3]
        && options.dilation == [1; 3]
        && options.groups == 1
        && options.padding_out == [0; 3]
        && (0..3).all(|i| options.padding[i] < k[i]);
    if stride_one && direct_applies(&x, &w, options.stride, options.dilation, options.groups) {
        return transposed(x, w, b, options.padding);
    }
    if stride_one && !on_cpu(&x.device()) {
        let padding = std::array::from_fn(|i| k[i] - 1 - options.padding[i]);
        return burn::tensor::module::conv3d(x, mirrored(w), b, ConvOptions::new([1; 3], padding, [1; 3], 1));
    }
    let blocks = options.stride == k
        && options.padding == [0; 3]
        && options.padding_out == [0; 3]
        && options.dilation == [1; 3]
        && options.groups == 1;
    // On the CPU burn-flex's own transposed conv is the faster (`cargo bench --bench conv`).
    if blocks && !on_cpu(&x.device()) && !x.device().is_autodiff() {
        return blockwise(x, w, b);
    }
    burn::tensor::module::conv_transpose3d(x, w, b, options)
}

/// The transposed conv whose kernel equals its stride (unpadded: a U-Net's up-sampling): each
/// input voxel writes its own block of kd × kh × kw output voxels, so the whole op is one matrix
/// product, `[out · taps, in] × [in, voxels]`, and a reshuffle of the blocks into place.
/// burn-cubecl's transposed-conv kernel loops over every tap and input channel per output
/// voxel: on lavapipe (`cargo bench --bench gpu -- --timed`, 32×32×16) its two launches took
/// 219 ms of a segmentation's 1197 ms of device time; the product and its copies take ~15 ms.
pub fn blockwise(x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>) -> Tensor<5> {
    let [n, ci, d, h, wd] = x.dims();
    let [_, co, kd, kh, kw] = w.dims();
    // The product as a 1×1×1 conv: burn's conv kernels are in every build already, where its
    // matmul would add 5.5 MB to the page's WebGPU engine.
    let w = w.reshape([ci, co * kd * kh * kw]).swap_dims(0, 1).reshape([co * kd * kh * kw, ci, 1, 1, 1]);
    let y = burn::tensor::module::conv3d(x, w, None, ConvOptions::new([1; 3], [0; 3], [1; 3], 1));
    let y: Tensor<8> = y.reshape([n, co, kd, kh, kw, d, h, wd]);
    let y = y.permute([0, 1, 5, 2, 6, 3, 7, 4]).reshape([n, co, d * kd, h * kh, wd * kw]);
    match b {
        Some(b) => y + b.reshape([1, co, 1, 1, 1]),
        None => y,
    }
}

/// A transposed conv's kernel `[in, out, k…]` as the kernel `[out, in, k…]` of the conv that
/// computes it at stride 1: flipped along every spatial axis, channel axes swapped.
fn mirrored(w: Tensor<5>) -> Tensor<5> {
    w.flip([2, 3, 4]).swap_dims(0, 1)
}

/// The stride-1 transposed conv with padding `padding` by [`direct`] (`w` is `[in, out, k…]`;
/// each `padding` below its kernel side).
pub fn transposed(x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>, padding: [usize; 3]) -> Tensor<5> {
    let k = [w.dims()[2], w.dims()[3], w.dims()[4]];
    let padding = std::array::from_fn(|i| (k[i] - 1 - padding[i], k[i] - 1 - padding[i]));
    direct(x, mirrored(w), b, padding)
}

fn direct_applies(x: &Tensor<5>, w: &Tensor<5>, stride: [usize; 3], dilation: [usize; 3], groups: usize) -> bool {
    let device = x.device();
    let taps: usize = w.dims()[2..].iter().product();
    on_cpu(&device)
        && !device.is_autodiff()
        && stride == [1; 3]
        && dilation == [1; 3]
        && groups == 1
        && taps > 1
        && direct_pays(x.dims()[2..].iter().product(), w.dims()[0] * w.dims()[1])
}

/// Whether the direct loop beats burn-flex's im2col + gemm for `voxels` per volume and
/// `pairs` = input × output channels. Measured (`cargo bench --bench conv`, 2026-12-03): the
/// loop wins by 2–6× where channels are few (the bundled net, ≤ 32 × 32) and ties at 16³
/// voxels × 128 × 128 channels; below that volume with 256–320 channels (an nnU-Net's deep
/// stages) gemm's packed panels are 3–5× faster (the loop re-reads the input once per block of
/// [`OB`] output channels).
fn direct_pays(voxels: usize, pairs: usize) -> bool {
    pairs <= 64 * 64 || voxels >= 16 * 16 * 16
}

#[allow(deprecated)] // ndarray: see backend.rs
fn on_cpu(device: &Device) -> bool {
    #[cfg(feature = "cpu-flex")]
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "cpu-ndarray")]
    if *device == Device::ndarray() {
        return true;
    }
    let _ = device;
    false
}

/// `y[n, o] = b[o] + Σ_c x[n, c] ⋆ w[o, c]` (cross-correlation, stride 1, zero padding
/// `(before, after)` per axis), as burn's `conv3d` defines it; by the widest loop the CPU runs.
pub fn direct(x: Tensor<5>, w: Tensor<5>, b: Option<Tensor<1>>, padding: [(usize, usize); 3]) -> Tensor<5> {
    direct_with(Kernel::detected(), x, w, b, padding)
}

/// [`direct`] by a given loop (one of [`Kernel::available`]: the tests and benchmarks compare
/// them).
pub fn direct_with(
    kernel: Kernel,
    x: Tensor<5>,
    w: Tensor<5>,
    b: Option<Tensor<1>>,
    padding: [(usize, usize); 3],
) -> Tensor<5> {
    assert!(Kernel::available().contains(&kernel), "this CPU cannot run the {} kernel", kernel.name());
    let device = x.device();
    let xd = x.dims();
    let wd = w.dims();
    assert_eq!(xd[1], wd[1], "conv3d: the input has {} channels, the kernel reads {}", xd[1], wd[1]);
    let data = |t: TensorData| t.convert::<f32>().try_into_vec::<f32>().expect("float tensor");
    let (xs, ws) = (data(x.into_data()), data(w.into_data()));
    let bs = b.map(|b| data(b.into_data()));
    let (out, dims) = direct_f32(kernel, xs, xd, &ws, wd, bs.as_deref(), padding);
    Tensor::from_data(TensorData::new(out, dims), &device)
}

/// [`direct`] on plain arrays: `x` is `[n, c, d, h, w]`, `w` is `[o, c, kd, kh, kw]`. `x` is
/// dropped once copied into its padded form, so that a large input is not held three times.
fn direct_f32(
    kernel: Kernel,
    x: Vec<f32>,
    xd: [usize; 5],
    w: &[f32],
    wd: [usize; 5],
    b: Option<&[f32]>,
    padding: [(usize, usize); 3],
) -> (Vec<f32>, [usize; 5]) {
    let [n, c, d, h, wi] = xd;
    let [o, _, kd, kh, kw] = wd;
    let k = [kd, kh, kw];
    let out = [
        d + padding[0].0 + padding[0].1 + 1 - kd,
        h + padding[1].0 + padding[1].1 + 1 - kh,
        wi + padding[2].0 + padding[2].1 + 1 - kw,
    ];
    let tiles = out[2].div_ceil(kernel.tile());
    // The input once more, zero-padded, each row long enough for the last tile.
    let p = [d + padding[0].0 + padding[0].1, h + padding[1].0 + padding[1].1, tiles * kernel.tile() + kw - 1];
    let mut xp = vec![0f32; n * c * p[0] * p[1] * p[2]];
    for (plane, src) in x.chunks_exact(d * h * wi).enumerate() {
        for z in 0..d {
            for y in 0..h {
                let at = ((plane * p[0] + z + padding[0].0) * p[1] + y + padding[1].0) * p[2] + padding[2].0;
                xp[at..at + wi].copy_from_slice(&src[(z * h + y) * wi..][..wi]);
            }
        }
    }
    drop(x);
    let taps = kd * kh * kw;
    let blocks = o.div_ceil(OB);
    // Weights per block of output channels, `[block][c][tap][OB]` (zeros past `o`), so that a
    // tile reads its OB weights for one tap side by side.
    let mut wb = vec![0f32; blocks * c * taps * OB];
    for oc in 0..o {
        for ci in 0..c {
            for t in 0..taps {
                wb[((oc / OB * c + ci) * taps + t) * OB + oc % OB] = w[(oc * c + ci) * taps + t];
            }
        }
    }
    let plane = out[1] * out[2];
    let mut y = vec![0f32; n * o * out[0] * plane];
    // The unit of work: one slice z of one block of output channels, written in place.
    let mut jobs: Vec<(usize, usize, usize, Vec<&mut [f32]>)> = Vec::with_capacity(n * blocks * out[0]);
    for (batch, volume) in y.chunks_mut(o * out[0] * plane).enumerate() {
        for (block, channels) in volume.chunks_mut(OB * out[0] * plane).enumerate() {
            let first = jobs.len();
            jobs.extend((0..out[0]).map(|z| (batch, block, z, Vec::with_capacity(OB))));
            for channel in channels.chunks_mut(out[0] * plane) {
                for (z, slice) in channel.chunks_mut(plane).enumerate() {
                    jobs[first + z].3.push(slice);
                }
            }
        }
    }
    let volume = p[0] * p[1] * p[2];
    let group = channel_group(c);
    let job = |(batch, block, z, mut slices): (usize, usize, usize, Vec<&mut [f32]>)| {
        let bias: [f32; OB] = std::array::from_fn(|j| b.and_then(|b| b.get(block * OB + j)).copied().unwrap_or(0.0));
        for c0 in (0..c).step_by(group) {
            let cg = group.min(c - c0);
            let input = &xp[(batch * c + c0) * volume..][..cg * volume];
            let wb = &wb[(block * c + c0) * taps * OB..][..cg * taps * OB];
            // The first group writes its sums plus the bias, the later ones add theirs.
            let bias = (c0 == 0).then_some(bias);
            match kernel {
                Kernel::Portable => slab(input, p, cg, k, wb, bias, z, out, &mut slices),
                // SAFETY: `direct_with` checked that this CPU has AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2Fma => unsafe { avx2::slab(input, p, cg, k, wb, bias, z, out, &mut slices) },
                #[cfg(not(target_arch = "x86_64"))]
                Kernel::Avx2Fma => unreachable!("AVX2 is x86-64 only"),
                #[cfg(all(target_arch = "wasm32", feature = "wasm-relaxed-simd"))]
                Kernel::RelaxedSimd => relaxed::slab(input, p, cg, k, wb, bias, z, out, &mut slices),
                #[cfg(not(all(target_arch = "wasm32", feature = "wasm-relaxed-simd")))]
                Kernel::RelaxedSimd => unreachable!("relaxed SIMD is in relaxed-SIMD wasm builds only"),
            }
        }
    };
    #[cfg(feature = "cpu-threads")]
    {
        use rayon::prelude::*;
        jobs.into_par_iter().for_each(job);
    }
    #[cfg(not(feature = "cpu-threads"))]
    jobs.into_iter().for_each(job);
    (y, [n, o, out[0], out[1], out[2]])
}

/// Input channels per sweep over an output slice. A sweep keeps each tile's sums in registers
/// over its channels' input rows (channels × kd × kh rows per tile); above 16 channels those
/// rows no longer fit the L1 cache beside the weights, so the slice is swept once per 8
/// channels, each sweep adding to the last. Measured (`cargo bench --bench conv`, one core,
/// 2026-12-03, three runs each): nnU-Net stage 0 (32 → 32 at 64³) 9.1–10.2 → 13.3–15.4
/// GFMA/s, stage 2 (128 → 128 at 16³) 15.5–20.6 → 24.5–29.1. 16 channels per sweep gained
/// less (stage 0: 11.3); sweeps of 8 at 16 channels and fewer slowed the bundled net's levels 0
/// and 1 (an earlier trial), so those keep one sweep.
fn channel_group(c: usize) -> usize {
    if c > 16 {
        8
    } else {
        c
    }
}

/// A tile's sums into the output row `dst`: written with the bias (`Some`: the first group of
/// input channels) or added to what the earlier groups wrote (`None`).
#[inline(always)]
fn store(dst: &mut [f32], sums: &[f32], bias: Option<f32>) {
    match bias {
        Some(b) => dst.iter_mut().zip(sums).for_each(|(o, a)| *o = a + b),
        None => dst.iter_mut().zip(sums).for_each(|(o, a)| *o += a),
    }
}

/// Output slice `z` of up to OB channels (`out[j]` is channel j's `[y][x]`). Explicit 4-lane
/// vectors (`wide`: SSE, NEON or wasm simd128): the compiler's own vectorisation of the plain
/// loop spilled the accumulators and ran at half the speed.
#[allow(clippy::too_many_arguments)]
fn slab(
    xp: &[f32],
    p: [usize; 3],
    c: usize,
    k: [usize; 3],
    wb: &[f32],
    bias: Option<[f32; OB]>,
    z: usize,
    dims: [usize; 3],
    out: &mut [&mut [f32]],
) {
    let (tiles, wide) = (dims[2].div_ceil(L), dims[2]);
    let taps = k[0] * k[1] * k[2];
    let lanes = |s: &[f32]| f32x4::from(<[f32; 4]>::try_from(s).expect("4 lanes"));
    for y in 0..dims[1] {
        for t in 0..tiles {
            let mut acc = [[f32x4::ZERO; L / 4]; OB];
            for ci in 0..c {
                for a in 0..k[0] {
                    for e in 0..k[1] {
                        let row = &xp[((ci * p[0] + z + a) * p[1] + y + e) * p[2] + t * L..][..L + k[2] - 1];
                        let wrow = &wb[(ci * taps + (a * k[1] + e) * k[2]) * OB..][..k[2] * OB];
                        for f in 0..k[2] {
                            let xv: [f32x4; L / 4] = std::array::from_fn(|v| lanes(&row[f + 4 * v..f + 4 * v + 4]));
                            let ws: &[f32; OB] = wrow[f * OB..f * OB + OB].try_into().expect("OB wide");
                            for (acc, &w) in acc.iter_mut().zip(ws) {
                                let w = f32x4::splat(w);
                                for (a, x) in acc.iter_mut().zip(xv) {
                                    *a += w * x;
                                }
                            }
                        }
                    }
                }
            }
            let (x0, width) = (t * L, L.min(wide - t * L));
            for (j, (plane, acc)) in out.iter_mut().zip(&acc).enumerate() {
                let acc: [f32; L] = std::array::from_fn(|i| acc[i / 4].as_array()[i % 4]);
                store(&mut plane[y * wide + x0..][..width], &acc, bias.map(|b| b[j]));
            }
        }
    }
}

/// The same loop as [`slab`] on 8-lane AVX2 registers with fused multiply-adds: a tile of
/// `8·V` voxels × [`OB`] channels keeps `4·V` accumulators in registers (16 in all on AVX2),
/// each tap loading `V` input vectors and broadcasting [`OB`] weights.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::OB;
    use std::arch::x86_64::*;

    /// Registers per tile row. Measured (`cargo bench --bench conv`, one core, 2026-12-03): 2
    /// gives 45–60 % of the FMA peak on the bundled net's shapes; 1 (too few accumulators to
    /// hide the FMA latency) and 3 (16 registers: accumulators spill) give 21–40 %.
    const V: usize = 2;
    /// Output voxels along x per tile.
    pub const L: usize = 8 * V;

    /// [`super::slab`] for CPUs with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn slab(
        xp: &[f32],
        p: [usize; 3],
        c: usize,
        k: [usize; 3],
        wb: &[f32],
        bias: Option<[f32; OB]>,
        z: usize,
        dims: [usize; 3],
        out: &mut [&mut [f32]],
    ) {
        let (tiles, wide) = (dims[2].div_ceil(L), dims[2]);
        let taps = k[0] * k[1] * k[2];
        for y in 0..dims[1] {
            for t in 0..tiles {
                let mut acc = [[_mm256_setzero_ps(); V]; OB];
                for ci in 0..c {
                    for a in 0..k[0] {
                        for e in 0..k[1] {
                            // Bounds checked once per row: the loads below stay inside `row`
                            // (the last reads lanes f + 8(V−1) .. f + 8V − 1 ≤ L + k − 2).
                            let row = &xp[((ci * p[0] + z + a) * p[1] + y + e) * p[2] + t * L..][..L + k[2] - 1];
                            let wrow = &wb[(ci * taps + (a * k[1] + e) * k[2]) * OB..][..k[2] * OB];
                            for f in 0..k[2] {
                                let mut xv = [_mm256_setzero_ps(); V];
                                for (v, x) in xv.iter_mut().enumerate() {
                                    // SAFETY: f + 8v + 7 < row.len() (above).
                                    *x = unsafe { _mm256_loadu_ps(row.as_ptr().add(f + 8 * v)) };
                                }
                                for (j, acc) in acc.iter_mut().enumerate() {
                                    let w = _mm256_set1_ps(wrow[f * OB + j]);
                                    for (a, x) in acc.iter_mut().zip(xv) {
                                        *a = _mm256_fmadd_ps(w, x, *a);
                                    }
                                }
                            }
                        }
                    }
                }
                let (x0, width) = (t * L, L.min(wide - t * L));
                for (j, (plane, acc)) in out.iter_mut().zip(&acc).enumerate() {
                    let mut lanes = [0f32; L];
                    for (v, a) in acc.iter().enumerate() {
                        // SAFETY: 8v + 7 < L.
                        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * v), *a) };
                    }
                    super::store(&mut plane[y * wide + x0..][..width], &lanes, bias.map(|b| b[j]));
                }
            }
        }
    }
}

/// [`slab`] with relaxed-SIMD multiply-adds, for wasm builds with feature `wasm-relaxed-simd`:
/// `a + w·x` in one instruction, which the browser compiles to an FMA where the CPU has one (V8
/// on x86-64 with FMA3, on ARM64) and to a multiply and an add elsewhere. Either rounding is
/// within the tolerance the tests hold the engine to against the native one. The target
/// feature is enabled for this loop only: macerator 0.5.2 (burn-flex's SIMD) does not compile
/// with `-C target-feature=+relaxed-simd` for the whole build.
#[cfg(all(target_arch = "wasm32", feature = "wasm-relaxed-simd"))]
mod relaxed {
    use super::{L, OB};
    use core::arch::wasm32::*;

    /// Registers per tile row (4 lanes each).
    const V: usize = L / 4;

    #[target_feature(enable = "relaxed-simd")]
    #[allow(clippy::too_many_arguments)]
    pub fn slab(
        xp: &[f32],
        p: [usize; 3],
        c: usize,
        k: [usize; 3],
        wb: &[f32],
        bias: Option<[f32; OB]>,
        z: usize,
        dims: [usize; 3],
        out: &mut [&mut [f32]],
    ) {
        let (tiles, wide) = (dims[2].div_ceil(L), dims[2]);
        let taps = k[0] * k[1] * k[2];
        for y in 0..dims[1] {
            for t in 0..tiles {
                let mut acc = [[f32x4_splat(0.0); V]; OB];
                for ci in 0..c {
                    for a in 0..k[0] {
                        for e in 0..k[1] {
                            // Bounds checked once per row: the loads below read lanes
                            // f + 4v .. f + 4v + 3 ≤ L + k − 2 < row.len().
                            let row = &xp[((ci * p[0] + z + a) * p[1] + y + e) * p[2] + t * L..][..L + k[2] - 1];
                            let wrow = &wb[(ci * taps + (a * k[1] + e) * k[2]) * OB..][..k[2] * OB];
                            for f in 0..k[2] {
                                let mut xv = [f32x4_splat(0.0); V];
                                for (v, x) in xv.iter_mut().enumerate() {
                                    // SAFETY: f + 4v + 3 < row.len() (above); v128_load takes
                                    // unaligned addresses.
                                    *x = unsafe { v128_load(row.as_ptr().add(f + 4 * v).cast()) };
                                }
                                for (j, acc) in acc.iter_mut().enumerate() {
                                    let w = f32x4_splat(wrow[f * OB + j]);
                                    for (a, x) in acc.iter_mut().zip(xv) {
                                        *a = f32x4_relaxed_madd(w, x, *a);
                                    }
                                }
                            }
                        }
                    }
                }
                let (x0, width) = (t * L, L.min(wide - t * L));
                for (j, (plane, acc)) in out.iter_mut().zip(&acc).enumerate() {
                    let mut lanes = [0f32; L];
                    for (v, a) in acc.iter().enumerate() {
                        // SAFETY: 4v + 3 < L.
                        unsafe { v128_store(lanes.as_mut_ptr().add(4 * v).cast(), *a) };
                    }
                    super::store(&mut plane[y * wide + x0..][..width], &lanes, bias.map(|b| b[j]));
                }
            }
        }
    }
}
