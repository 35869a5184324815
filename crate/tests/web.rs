//! Browser tests (wasm-bindgen-test in headless Chromium; `npm test` runs them): the engine
//! on WebGPU must give the numbers it gives on the CPU backends.
#![cfg(target_arch = "wasm32")]

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::backend::{cpu_device, webgpu_device};
use seglrp::demo::phantom::phantom;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{self, prepare};
use seglrp::ops::pool::{max_pool3d, max_unpool3d};
use seglrp::rng::SplitMix;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn log(s: String) {
    web_sys::console::log_1(&s.into());
}

async fn run_study(device: &Device) -> (Vec<u8>, engine::VoxelExplanation) {
    let vol = phantom([24, 20, 10], 9).volume;
    let net = engine::toy_model(device);
    let p = prepare(&net, &vol, device, PrepareOptions::default()).unwrap();
    let mask = engine::segmentation(&p).await.unwrap();
    let e = engine::explain(&p, [9, 8, 5], 1, &seglrp::lrp::Composite::Epsilon { epsilon: 1e-6 }).await.unwrap();
    (mask, e)
}

#[wasm_bindgen_test]
async fn net_and_lrp_agree_on_webgpu_and_cpu() {
    let gpu = webgpu_device().await.expect("WebGPU (headless Chromium needs --enable-unsafe-webgpu)");
    let (mask_gpu, e_gpu) = run_study(&gpu).await;
    for name in seglrp::backend::cpu_backends() {
        let cpu = cpu_device(name).unwrap();
        let (mask_cpu, e_cpu) = run_study(&cpu).await;
        let scale = max_abs(&e_cpu.relevance);
        let diff = max_abs_diff(&e_cpu.relevance, &e_gpu.relevance);
        log(format!(
            "{name} vs webgpu: max|ΔR| = {diff:e}, max|R| = {scale:e}, logits {} / {}",
            e_cpu.logit, e_gpu.logit
        ));
        assert!(scale > 0.0);
        assert!(diff <= 1e-4 * scale, "{name}: relevance differs by {diff} (max |R| {scale})");
        assert!((e_cpu.logit - e_gpu.logit).abs() <= 1e-4 * e_cpu.logit.abs().max(1.0));
        assert_eq!(mask_cpu, mask_gpu, "{name}: segmentations differ");
    }
}

#[wasm_bindgen_test]
async fn pooling_matches_between_webgpu_and_cpu() {
    let gpu = webgpu_device().await.unwrap();
    let cpu = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(4);
    let shape = [1, 3, 4, 6, 8];
    let x: Vec<f32> = (0..shape.iter().product()).map(|_| rng.symmetric(1.0)).collect();
    let r: Vec<f32> = (0..shape.iter().product::<usize>() / 8).map(|_| rng.symmetric(1.0)).collect();
    let mut outs = Vec::new();
    for dev in [&gpu, &cpu] {
        let xt = Tensor::<5>::from_data(TensorData::new(x.clone(), shape), dev);
        let rt = Tensor::<5>::from_data(TensorData::new(r.clone(), [1, 3, 2, 3, 4]), dev);
        let pooled = max_pool3d(xt.clone(), [2; 3]).into_data_async().await.unwrap().try_into_vec::<f32>().unwrap();
        let routed = max_unpool3d(xt, rt, [2; 3]).into_data_async().await.unwrap().try_into_vec::<f32>().unwrap();
        outs.push((pooled, routed));
    }
    assert_eq!(outs[0], outs[1]);
}

/// The two-pass region map (the transposed walk for Lᵀ1, then one LRP pass) and a norm + trilinear
/// network with EpsilonGammaBox give the same numbers on WebGPU as on the CPU.
#[wasm_bindgen_test]
async fn region_maps_and_other_composites_agree_on_webgpu_and_cpu() {
    use seglrp::lrp::region_map::region_map;
    use seglrp::lrp::Composite;
    use seglrp::model::unet::{NormKind, UNet, UNetConfig, Up};
    let gpu = webgpu_device().await.unwrap();
    let cpu = cpu_device("cpu").unwrap();
    let cfg =
        UNetConfig { levels: 2, base_channels: 4, norm: NormKind::Instance, up: Up::Trilinear, ..UNetConfig::small() };
    let mut rng = SplitMix::new(8);
    let shape = [1, 6, 8, 12, 10];
    let x: Vec<f32> = (0..shape.iter().product()).map(|_| rng.symmetric(2.0)).collect();
    let mut region = vec![0f32; 8 * 12 * 10];
    for i in [300usize, 301, 311, 312, 420, 421, 431] {
        region[i] = 1.0;
    }
    let composite = Composite::EpsilonGammaBox { low: vec![-2.0; 6], high: vec![2.0; 6] };
    let mut outs = Vec::new();
    for dev in [&cpu, &gpu] {
        // Weights are drawn on the CPU (seeded) and moved, so both devices hold the same net.
        let graph = seglrp::model::unet::graph(&UNet::seeded(&cfg, 5, 0.1, &cpu).to_device(dev));
        let trace = graph.trace(Tensor::<5>::from_data(TensorData::new(x.clone(), shape), dev));
        let mask = Tensor::<5>::from_data(TensorData::new(region.clone(), [1, 1, 8, 12, 10]), dev);
        let m = region_map(&graph, &trace, &composite, 1, mask, ([0; 3], [7, 11, 9]));
        outs.push(m.relevance.into_data_async().await.unwrap().try_into_vec::<f32>().unwrap());
    }
    let scale = max_abs(&outs[0]);
    let diff = max_abs_diff(&outs[0], &outs[1]);
    log(format!("region map cpu vs webgpu: max|ΔM_A| = {diff:e}, max|M_A| = {scale:e}"));
    assert!(scale > 0.0 && diff <= 1e-4 * scale, "region maps differ by {diff} (max {scale})");
}

/// A windowed study (tiling.rs: forward passes on windows, region maps core by core, host
/// pasting, async read-backs) gives the whole-volume pass's mask and maps on WebGPU.
#[wasm_bindgen_test]
async fn windowed_studies_equal_the_whole_pass_on_webgpu() {
    use seglrp::engine::{explain, explain_regions, prepare, segmentation, Mode};
    use seglrp::lrp::Composite;
    let gpu = webgpu_device().await.unwrap();
    let vol = phantom([40, 32, 12], 5).volume;
    let net = engine::toy_model(&gpu);
    let graph = seglrp::model::unet::graph(&net);
    let max_window = seglrp::spatial::crop::window_around(&graph, [0, 8, 8], [3, 15, 15], [12, 32, 40]).voxels();
    let whole = prepare(&net, &vol, &gpu, PrepareOptions::default().with_mode(Mode::Whole)).unwrap();
    let windowed = prepare(&net, &vol, &gpu, PrepareOptions::default().with_mode(Mode::Windowed(max_window))).unwrap();
    assert!(windowed.windowed());
    assert_eq!(segmentation(&whole).await.unwrap(), segmentation(&windowed).await.unwrap());
    let c = Composite::Epsilon { epsilon: 1e-6 };
    let a = explain(&whole, [30, 20, 6], 1, &c).await.unwrap();
    let b = explain(&windowed, [30, 20, 6], 1, &c).await.unwrap();
    let (scale, diff) = (max_abs(&a.relevance), max_abs_diff(&a.relevance, &b.relevance));
    log(format!("windowed vs whole on WebGPU, voxel: max|ΔR| = {diff:e}, max|R| = {scale:e}"));
    assert!(scale > 0.0 && diff <= 1e-4 * scale);
    // A 20×16×6 box: several cores at this window size.
    let region: Vec<u8> = (0..40 * 32 * 12)
        .map(|i| {
            u8::from((10..30).contains(&(i % 40)) && (8..24).contains(&((i / 40) % 32)) && (3..9).contains(&(i / 1280)))
        })
        .collect();
    assert!(
        seglrp::spatial::tiling::cores(&windowed.graph, [3, 8, 10], [8, 23, 29], windowed.padded, max_window).len() > 1
    );
    let a = explain_regions(&whole, &[&region], Some(1), &c, |_, _| {}).await.unwrap().remove(0);
    let b = explain_regions(&windowed, &[&region], Some(1), &c, |_, _| {}).await.unwrap().remove(0);
    let (scale, diff) = (max_abs(&a.relevance), max_abs_diff(&a.relevance, &b.relevance));
    log(format!("windowed vs whole on WebGPU, region: max|ΔM_A| = {diff:e}, max|M_A| = {scale:e}"));
    assert_eq!((a.voxels, a.left_out), (b.voxels, b.left_out));
    assert!(scale > 0.0 && diff <= 1e-4 * scale);
}

/// The engine's convolutions in the browser (conv.rs's loop, compiled for wasm simd128) equal
/// burn's own on the CPU backend, and the strided/1×1×1 ones still go to burn.
#[wasm_bindgen_test]
async fn the_engine_convs_equal_burns_in_the_browser() {
    use burn::tensor::module::{conv3d, conv_transpose3d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    let cpu = cpu_device("cpu").unwrap();
    let mut rng = SplitMix::new(21);
    let mut random = |dims: [usize; 5]| {
        let n = dims.iter().product();
        Tensor::<5>::from_data(TensorData::new((0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>(), dims), &cpu)
    };
    let diff = |a: Tensor<5>, b: Tensor<5>| {
        let scale = b.clone().abs().max().into_scalar::<f32>();
        ((a - b).abs().max().into_scalar::<f32>(), scale)
    };
    for (ci, co, dims, k, p, stride) in [
        (6, 8, [5, 7, 13], 3, 1, 1),
        (16, 5, [4, 6, 9], 3, 1, 1),
        (3, 9, [6, 6, 6], 2, 0, 2),
        (8, 2, [3, 4, 5], 1, 0, 1),
    ] {
        let x = random([2, ci, dims[0], dims[1], dims[2]]);
        let w = random([co, ci, k, k, k]);
        let options = ConvOptions::new([stride; 3], [p; 3], [1; 3], 1);
        let (d, scale) = diff(
            seglrp::ops::conv::conv3d(x.clone(), w.clone(), None, options.clone()),
            conv3d(x.clone(), w, None, options),
        );
        assert!(scale > 0.1 && d <= 1e-5 * scale, "conv {ci}→{co} k {k} stride {stride}: {d}");
        let wt = random([ci, co, k, k, k]);
        let options = ConvTransposeOptions::new([stride; 3], [p; 3], [0; 3], [1; 3], 1);
        let (d, scale) = diff(
            seglrp::ops::conv::conv_transpose3d(x.clone(), wt.clone(), None, options.clone()),
            conv_transpose3d(x, wt, None, options),
        );
        assert!(scale > 0.1 && d <= 1e-5 * scale, "transposed conv {ci}→{co} k {k} stride {stride}: {d}");
        log(format!("conv {ci}→{co} k {k} stride {stride}: direct = burn within {d:e}"));
    }
}
