//! Memory, counted by a global allocator that tracks live and peak bytes (the CPU backend
//! allocates through it): a windowed study's click holds its window's activations, not the
//! volume's, and repeated clicks release what they allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use seglrp::backend::cpu_device;
use seglrp::engine::PrepareOptions;
use seglrp::engine::{explain, explain_regions, prepare, segmentation, Prepared};
use seglrp::io::volume::Volume;
use seglrp::lrp::Composite;
use seglrp::rng::SplitMix;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MB: f64 = 1024.0 * 1024.0;

/// The counters are process-wide: tests of this file run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, returning its result and the most bytes live at once during it beyond those
/// live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed) - before)
}

fn study(dims: [usize; 3], seed: u64) -> Volume {
    let mut rng = SplitMix::new(seed);
    let n = 6 * dims.iter().product::<usize>();
    // Positive "intensities" so that normalisation keeps most voxels.
    let data = (0..n).map(|_| 100.0 + 20.0 * rng.normal()).collect();
    Volume { dims, channels: 6, spacing: [1.0; 3], affine: seglrp::io::geometry::Affine::diagonal([1.0; 3]), data }
}

/// 20 clicks at the same voxel: what stays allocated after the last equals what stayed after
/// the first (nothing accumulates per request), and the maps are identical.
fn no_growth(p: &Prepared, voxel: [usize; 3], composite: &Composite) -> (usize, usize) {
    let first = pollster::block_on(explain(p, voxel, 1, composite)).unwrap();
    let after_first = LIVE.load(Relaxed);
    let mut last = None;
    for _ in 1..20 {
        last = Some(pollster::block_on(explain(p, voxel, 1, composite)).unwrap());
    }
    if let Some(e) = last {
        assert_eq!(e.relevance, first.relevance);
    }
    (after_first, LIVE.load(Relaxed))
}

#[test]
fn windowed_clicks_hold_their_window_and_release_it() {
    let _alone = alone();
    let dev = cpu_device("cpu").unwrap();
    let net = seglrp::model::weights::bundled(&dev).unwrap();
    // 3.5 M voxels: windowed (above 2^21); a whole-volume pass would hold ~1.7 GB.
    let dims = [192, 192, 96];
    let vol = study(dims, 3);
    let volume_bytes = 6 * 4 * dims.iter().product::<usize>();
    let (p, prepare_peak) = peak_of(|| prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap());
    assert!(p.windowed(), "a study of {dims:?} should be windowed");
    drop(vol);
    let (mask, segment_peak) = peak_of(|| pollster::block_on(segmentation(&p)).unwrap());
    let composite = Composite::Epsilon { epsilon: 1e-6 };
    let voxel = [96, 96, 48];
    let (e, click_peak) = peak_of(|| pollster::block_on(explain(&p, voxel, 1, &composite)).unwrap());
    assert!(e.relevance.iter().any(|v| *v != 0.0));
    // A 20-voxel box at the centre: one window of the region.
    let mut region = vec![0u8; mask.len()];
    for z in 46..50 {
        for x in 94..99 {
            region[x + dims[0] * (96 + dims[1] * z)] = 1;
        }
    }
    let (r, region_peak) = peak_of(|| {
        pollster::block_on(explain_regions(&p, &[&region], Some(1), &composite, |_, _| {})).unwrap().remove(0)
    });
    assert_eq!(r.voxels, 20);
    let (after_first, after_last) = no_growth(&p, voxel, &composite);
    println!(
        "{dims:?}: input {:.0} MB; peak beyond what was live: prepare {:.0} MB, segmentation {:.0} MB, click {:.0} MB, \
            20-voxel region {:.0} MB; live after 1 click {:.1} MB, after 20 {:.1} MB",
        volume_bytes as f64 / MB,
        prepare_peak as f64 / MB,
        segment_peak as f64 / MB,
        click_peak as f64 / MB,
        region_peak as f64 / MB,
        after_first as f64 / MB,
        after_last as f64 / MB
    );
    // The output maps alone are 6 × the volume (the relevance handed back, 85 MB here); the
    // passes must stay within a window's worth beyond that, far below the whole volume's
    // activations (~500 bytes per voxel).
    let whole_pass = 500 * dims.iter().product::<usize>();
    for (what, peak) in [("click", click_peak), ("region", region_peak)] {
        assert!(
            peak < volume_bytes + 400 * (1 << 20) && peak < whole_pass / 2,
            "{what}: {:.0} MB at the peak",
            peak as f64 / MB
        );
    }
    assert!(segment_peak < whole_pass / 2, "segmentation: {:.0} MB at the peak", segment_peak as f64 / MB);
    assert!(
        after_last <= after_first + (1 << 20),
        "20 clicks grew the live memory from {after_first} to {after_last} bytes"
    );
}

#[test]
fn whole_volume_clicks_release_what_they_allocate() {
    let _alone = alone();
    let dev = cpu_device("cpu").unwrap();
    let net = seglrp::model::weights::bundled(&dev).unwrap();
    let vol = study([96, 80, 32], 4);
    let p = prepare(&net, &vol, &dev, PrepareOptions::default()).unwrap();
    assert!(!p.windowed());
    let (after_first, after_last) = no_growth(&p, [48, 40, 16], &Composite::Epsilon { epsilon: 1e-6 });
    println!(
        "whole-volume study: live after 1 click {:.1} MB, after 20 {:.1} MB",
        after_first as f64 / MB,
        after_last as f64 / MB
    );
    assert!(
        after_last <= after_first + (1 << 20),
        "20 clicks grew the live memory from {after_first} to {after_last} bytes"
    );
}
