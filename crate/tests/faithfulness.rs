//! Faithfulness on the bundled liver model and the demo cohort's predicted tumours: LRP maps
//! against the random floor and against themselves shuffled, the probe's maps against the
//! engine's, and the perturbation's bookkeeping.

use seglrp::backend::cpu_device;
use seglrp::demo::phantom::cohort_patient;
use seglrp::engine::{self, Model, PrepareOptions, Prepared};
use seglrp::faithfulness::ablation::spearman;
use seglrp::faithfulness::{attribute, curves, evaluate, Baseline, EvaluationOptions, Method, MethodOptions};
use seglrp::faithfulness::{PerturbationOptions, Probe};
use seglrp::lrp::composite::NAMES;
use seglrp::rng::SplitMix;

/// A demo patient prepared for the bundled model, with its predicted tumour (class 1).
fn patient(i: usize) -> (Prepared, Vec<u8>) {
    let dev = cpu_device("cpu").unwrap();
    let model = Model::bundled(&dev).unwrap();
    let p = model.prepare(&cohort_patient(i).volume, &dev, PrepareOptions::default()).unwrap();
    let mask = pollster::block_on(engine::segmentation(&p)).unwrap();
    let tumour: Vec<u8> = mask.iter().map(|&m| u8::from(m == 1)).collect();
    assert!(tumour.iter().any(|v| *v == 1), "patient {i} has a predicted tumour");
    (p, tumour)
}

fn lrp(name: &str, p: &Prepared) -> Method {
    Method::parse(name, |n| engine::composite(n, p)).unwrap()
}

#[test]
fn every_lrp_composite_beats_the_random_map_and_its_own_shuffle() {
    let options = PerturbationOptions { steps: 10, ..Default::default() };
    let patients = [2, 6, 7];
    let mut morf = vec![0f32; NAMES.len() + 2];
    for &i in &patients {
        let (p, tumour) = patient(i);
        let probe = pollster::block_on(Probe::new(&p, &tumour, Some(1))).unwrap();
        let baseline = Baseline::Background.values(&probe, 1);
        let methods: Vec<Method> = NAMES.iter().map(|n| lrp(n, &p)).chain([Method::Random]).collect();
        let mut maps = Vec::new();
        for (k, m) in methods.iter().enumerate() {
            let map =
                pollster::block_on(attribute(&probe, m, &baseline, &MethodOptions::default(), &mut |_, _| {})).unwrap();
            let c = pollster::block_on(curves(&probe, &map, &baseline, &options, &mut |_, _| {})).unwrap();
            eprintln!("patient {i} {:<24} MoRF {:.3} LeRF {:.3}", m.name(), c.aopc_morf, c.aopc_lerf);
            morf[k] += c.aopc_morf / patients.len() as f32;
            maps.push(map);
        }
        // The default composite's map with its values shuffled over the study's voxels and channels.
        let mut shuffled = maps[NAMES.iter().position(|n| *n == engine::DEFAULT_COMPOSITE).unwrap()].clone();
        let n = probe.inside.len();
        let places: Vec<usize> = (0..shuffled.len()).filter(|i| probe.inside[i % n]).collect();
        let mut rng = SplitMix::new(i as u64);
        for k in (1..places.len()).rev() {
            shuffled.swap(places[k], places[(rng.next_u64() % (k as u64 + 1)) as usize]);
        }
        let c = pollster::block_on(curves(&probe, &shuffled, &baseline, &options, &mut |_, _| {})).unwrap();
        eprintln!("patient {i} {:<24} MoRF {:.3}", "shuffled", c.aopc_morf);
        morf[NAMES.len() + 1] += c.aopc_morf / patients.len() as f32;
    }
    let random = morf[NAMES.len()];
    for (name, aopc) in NAMES.iter().zip(&morf) {
        assert!(*aopc > random + 0.05, "{name}: mean MoRF AOPC {aopc} vs the random map's {random}");
    }
    let default = morf[NAMES.iter().position(|n| *n == engine::DEFAULT_COMPOSITE).unwrap()];
    let shuffled = morf[NAMES.len() + 1];
    assert!(default > shuffled + 0.05, "{}: {default}, shuffled {shuffled}", engine::DEFAULT_COMPOSITE);
}

#[test]
fn the_probe_maps_the_region_as_the_engine_does_and_scores_it() {
    let (p, tumour) = patient(7);
    let probe = pollster::block_on(Probe::new(&p, &tumour, Some(1))).unwrap();
    // The predicted tumour is exactly what is predicted as tumour in its box.
    assert_eq!(probe.unperturbed.dice, 1.0);
    let logits = pollster::block_on(seglrp::backend::read(p.logits().unwrap())).unwrap();
    let [nz, ny, nx] = p.padded;
    let [dx, dy, _] = p.dims;
    let summed: f64 = tumour
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == 1)
        .map(|(i, _)| {
            let (x, y, z) = (i % dx, (i / dx) % dy, i / (dx * dy));
            logits[nx * ny * nz + (z * ny + y) * nx + x] as f64
        })
        .sum();
    let logit = probe.unperturbed.logit as f64;
    assert!((logit - summed).abs() <= 1e-4 * summed.abs(), "probe {logit} vs the logits' sum {summed}");
    for name in ["EpsilonGammaBox", "EpsilonPlus"] {
        let composite = engine::composite(name, &p).unwrap();
        let ours = probe.on_study(&pollster::block_on(probe.region_map(&composite)).unwrap(), p.dims);
        let engine = pollster::block_on(engine::explain_regions(&p, &[&tumour], Some(1), &composite, |_, _| {}))
            .unwrap()
            .remove(0)
            .relevance;
        let scale = engine.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = ours.iter().zip(&engine).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4 * scale, "{name}: max|Δ| {diff} vs max {scale}");
    }
}

#[test]
fn curves_meet_when_everything_is_replaced_and_ablation_is_reported() {
    let (p, tumour) = patient(6);
    let probe = pollster::block_on(Probe::new(&p, &tumour, Some(1))).unwrap();
    // A budget beyond the window: both curves end with every value of the study replaced.
    let options = EvaluationOptions {
        perturbation: PerturbationOptions { steps: 2, budget: 1e9, ..Default::default() },
        baseline: Baseline::Zero,
        ablation: true,
        ..Default::default()
    };
    let e = pollster::block_on(evaluate(&probe, &[lrp("Epsilon", &p)], &options, &mut |_, _| {})).unwrap();
    let c = &e.methods[0].curves;
    let (m, l) = (c.morf.last().unwrap().logit, c.lerf.last().unwrap().logit);
    assert!((m - l).abs() <= 1e-4 * m.abs().max(1.0), "MoRF ends at {m}, LeRF at {l}");
    assert_eq!(c.units[0], 0);
    assert_eq!(c.morf[0], probe.unperturbed);
    let a = e.ablation.as_ref().unwrap();
    assert_eq!(a.len(), 6);
    let shares = e.methods[0].shares.as_ref().unwrap();
    let drops: Vec<f32> = a.iter().map(|a| a.logit_drop).collect();
    assert_eq!(e.methods[0].share_vs_ablation, spearman(shares, &drops));
    eprintln!(
        "patient 6: shares {shares:?}, logit lost per channel {drops:?}, Spearman {:?}",
        spearman(shares, &drops)
    );
}

#[test]
fn a_windowed_study_probes_as_the_whole_one_and_refuses_a_region_beyond_its_window() {
    let (whole, tumour) = patient(6);
    let dev = cpu_device("cpu").unwrap();
    let model = Model::bundled(&dev).unwrap();
    let volume = cohort_patient(6).volume;
    let windowed =
        model.prepare(&volume, &dev, PrepareOptions::default().with_mode(engine::Mode::Windowed(1 << 20))).unwrap();
    let a = pollster::block_on(Probe::new(&whole, &tumour, Some(1))).unwrap();
    let b = pollster::block_on(Probe::new(&windowed, &tumour, Some(1))).unwrap();
    assert!((a.unperturbed.logit - b.unperturbed.logit).abs() <= 1e-4 * a.unperturbed.logit.abs());
    assert_eq!(a.unperturbed.dice, b.unperturbed.dice);
    let composite = engine::composite("EpsilonPlus", &whole).unwrap();
    let (ma, mb) = pollster::block_on(async {
        (a.region_map(&composite).await.unwrap(), b.region_map(&composite).await.unwrap())
    });
    let scale = ma.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ma.iter().zip(&mb).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= 1e-4 * scale, "windowed vs whole region map: {diff} of {scale}");
    let small =
        model.prepare(&volume, &dev, PrepareOptions::default().with_mode(engine::Mode::Windowed(4096))).unwrap();
    let e = pollster::block_on(Probe::new(&small, &tumour, Some(1))).err().expect("refused");
    assert!(e.contains("receptive window") && e.contains("smaller region"), "{e}");
}
