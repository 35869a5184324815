//! The liver phantoms: deterministic, labelled where (and only where) tumours are, imaged with
//! the Gd-EOB-DTPA enhancement pattern the model has to learn, and with the artefacts listed in
//! phantom/scanner.rs.

use seglrp::demo::phantom::anatomy::{LesionKind, Patient, Tissue};
use seglrp::demo::phantom::scanner::Acquisition;
use seglrp::demo::phantom::{cohort_patient, cohort_seed, study, training_patch, COHORT_DIMS, COHORT_SEED_BASE};
use seglrp::io::volume::Volume;

/// World coordinates (mm) of voxel `i` of `vol`.
fn world(vol: &Volume, i: usize) -> [f32; 3] {
    let [nx, ny, _] = vol.dims;
    let v = [(i % nx) as f64, ((i / nx) % ny) as f64, (i / (nx * ny)) as f64];
    std::array::from_fn(|r| {
        (vol.affine.0[r][0] * v[0] + vol.affine.0[r][1] * v[1] + vol.affine.0[r][2] * v[2] + vol.affine.0[r][3]) as f32
    })
}

#[test]
fn phantoms_are_deterministic_and_the_cohort_is_held_out() {
    let a = study(77, [48, 40, 12]);
    let b = study(77, [48, 40, 12]);
    assert_eq!(a.volume, b.volume);
    assert_eq!(a.label, b.label);
    assert_ne!(study(78, [48, 40, 12]).volume.data, a.volume.data);
    assert!(cohort_seed(1) >= COHORT_SEED_BASE);
    assert!(
        std::panic::catch_unwind(|| training_patch(cohort_seed(1), [8, 8, 4])).is_err(),
        "cohort seeds must not be trainable"
    );
    let p = cohort_patient(1);
    assert_eq!(p.volume.dims, COHORT_DIMS);
    assert_eq!(p.volume.channels, 6);
}

#[test]
fn the_label_marks_tumours_and_never_cysts() {
    let mut checked = 0;
    for seed in 1..40u64 {
        let patient = Patient::new(seed);
        if !patient.lesions.iter().any(|l| l.kind == LesionKind::Cyst)
            || !patient.lesions.iter().any(|l| l.kind.is_tumour() && l.diameter() > 12.0)
        {
            continue;
        }
        let p = study(seed, [96, 80, 30]);
        let labelled: Vec<usize> = (0..p.label.len()).filter(|i| p.label[*i] == 1).collect();
        assert!(!labelled.is_empty(), "seed {seed}: tumours but no label");
        for &i in &labelled {
            let w = world(&p.volume, i);
            let near =
                patient.lesions.iter().filter(|l| l.kind.is_tumour()).map(|l| l.rho(w)).fold(f32::INFINITY, f32::min);
            assert!(near < 1.4, "seed {seed}: labelled voxel {i} lies outside every tumour (rho {near})");
        }
        for i in 0..p.label.len() {
            if let Tissue::Lesion(k) = patient.tissue(world(&p.volume, i)) {
                if patient.lesions[k].kind == LesionKind::Cyst {
                    assert_eq!(p.label[i], 0, "seed {seed}: a cyst voxel is labelled tumour");
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} patients had both a cyst and a tumour");
}

/// Mean raw intensity per sequence over the voxels whose centre is `pick`ed.
fn means(vol: &Volume, patient: &Patient, pick: impl Fn(Tissue, [f32; 3]) -> bool) -> Option<[f32; 6]> {
    let n = vol.voxels();
    let idx: Vec<usize> = (0..n)
        .filter(|i| {
            let w = world(vol, *i);
            pick(patient.tissue(w), w)
        })
        .collect();
    (idx.len() >= 8)
        .then(|| std::array::from_fn(|c| idx.iter().map(|i| vol.data[c * n + i]).sum::<f32>() / idx.len() as f32))
}

#[test]
fn sequences_show_the_gd_eob_dtpa_pattern() {
    let (mut hyper, mut hypo, mut cyst) = (0, 0, 0);
    for seed in 1..60u64 {
        let patient = Patient::new(seed);
        let p = study(seed, [128, 96, 40]);
        let vol = &p.volume;
        // Voxels well inside a structure: partial volume and misregistration blur the edges.
        let pr = &patient;
        let core = |kind: LesionKind| {
            move |t: Tissue, w: [f32; 3]| {
                matches!(t, Tissue::Lesion(k)
                    if pr.lesions[k].kind == kind && pr.lesions[k].diameter() > 14.0 && pr.lesions[k].rho(w) < 0.5)
            }
        };
        let liver = means(vol, &patient, |t, _| t == Tissue::Liver).expect("every patient has a liver");
        let portal = means(vol, &patient, |t, _| t == Tissue::PortalVein).expect("portal vein");
        assert!(
            portal[3] > 1.2 * liver[3],
            "seed {seed}: vessels are bright in the portal phase ({} vs liver {})",
            portal[3],
            liver[3]
        );
        assert!(liver[5] > 1.4 * liver[1], "seed {seed}: the liver takes up Gd-EOB-DTPA by 15 min");
        if let Some(t) = means(vol, &patient, core(LesionKind::Hypervascular)) {
            assert!(
                t[2] > 1.3 * liver[2],
                "seed {seed}: hypervascular tumour bright at 20 s: {t:?} vs liver {liver:?}"
            );
            assert!(t[4] < liver[4], "seed {seed}: washout at 120 s: {t:?} vs liver {liver:?}");
            assert!(t[5] < 0.6 * liver[5], "seed {seed}: dark in the hepatobiliary phase");
            hyper += 1;
        }
        if let Some(t) = means(vol, &patient, core(LesionKind::Hypovascular)) {
            assert!(t[2] < liver[2], "seed {seed}: hypovascular core dark at 20 s");
            assert!(t[5] < 0.6 * liver[5], "seed {seed}: dark in the hepatobiliary phase");
            hypo += 1;
        }
        if let Some(t) = means(vol, &patient, core(LesionKind::Cyst)) {
            assert!(t[0] > 3.0 * liver[0], "seed {seed}: cysts bright on T2");
            assert!((2..6).all(|c| t[c] < 0.7 * liver[1]), "seed {seed}: cysts never enhance: {t:?}");
            cyst += 1;
        }
        if hyper >= 2 && hypo >= 2 && cyst >= 2 {
            return;
        }
    }
    panic!("too few large lesions to check: {hyper} hypervascular, {hypo} hypovascular, {cyst} cysts");
}

#[test]
fn acquisitions_vary_voxel_size_registration_and_noise() {
    let acqs: Vec<Acquisition> = (1..30).map(Acquisition::new).collect();
    for a in &acqs {
        assert_eq!(a.spacing[0], a.spacing[1]);
        assert!((2.7..=3.3).contains(&a.spacing[0]) && (4.5..=5.5).contains(&a.spacing[2]), "{:?}", a.spacing);
        assert_eq!(a.shifts[1], [0.0; 3], "the label is aligned with T1 plain");
        assert!(a.shifts.iter().flatten().all(|s| s.abs() <= 3.0));
    }
    assert!(acqs.iter().any(|a| a.shifts[0][2].abs() > 1.0), "T2 is misregistered through-plane in some studies");
    let sizes: Vec<f32> = acqs.iter().map(|a| a.spacing[2]).collect();
    assert!(
        sizes.iter().cloned().fold(0.0, f32::max) - sizes.iter().cloned().fold(10.0, f32::min) > 0.5,
        "slice thickness varies"
    );
    // Rician noise: air is not zero but positive, with a mean of about σ√(π/2).
    let p = study(5, COHORT_DIMS);
    let air: Vec<f32> = (0..64).map(|x| p.volume.data[x]).collect();
    assert!(air.iter().all(|v| *v > 0.0) && air.iter().any(|v| *v > 1.0), "air carries Rician noise: {air:?}");
}

#[test]
fn nifti_files_keep_the_study_geometry() {
    let p = study(9, [32, 24, 8]);
    let files = p.nifti_files(true);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "t2.nii.gz",
            "t1_plain.nii.gz",
            "t1_20s.nii.gz",
            "t1_60s.nii.gz",
            "t1_120s.nii.gz",
            "t1_15min.nii.gz",
            "label.nii.gz"
        ]
    );
    let refs: Vec<seglrp::io::study::Input> =
        files.iter().map(|(n, b)| seglrp::io::study::Input::bytes(n.clone(), b)).collect();
    let mut reports = seglrp::io::study::read_files(&refs);
    let st = seglrp::io::study::assemble_reports(&mut reports, &[]).expect("the files make a study");
    assert_eq!(st.volume.data, p.volume.data);
    assert_eq!(st.label.as_deref(), Some(&p.label[..]));
    assert!(st.volume.affine.max_difference(&p.volume.affine).0 < 1e-4);
    // Centred on the liver: the grid's middle is at x = y = 0.
    let mid = world(&p.volume, p.volume.index([16, 12, 4]));
    assert!(mid[0].abs() < p.volume.spacing[0] && mid[1].abs() < p.volume.spacing[1], "{mid:?}");
}
