//! The `seglrp` binary on real files: segment, explain a region, and a cohort run with a broken
//! study, resumption and its figures. The numbers are checked against the engine called
//! directly and against each other (the page is checked against `seglrp explain` in
//! tests/e2e.mjs).
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_seglrp");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("seglrp runs")
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "seglrp {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seglrp-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn files_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".nii.gz"))
        .collect();
    v.sort();
    v
}

/// Width and height from a PNG's IHDR chunk (after checking the signature).
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn shares(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// `segment` writes the mask `explain` reports; `explain --region tp/fn/--box/--mask` pick the
/// voxels they name, and the regions that need a label or a voxel say so.
#[test]
fn segment_and_explain_regions() {
    let dir = tmp("explain");
    let study = dir.join("p13");
    ok(&["sample", "--patient", "13", "--dir", study.to_str().unwrap()]);
    let files = files_of(&study);
    assert_eq!(files.len(), 7, "six sequences and the label: {files:?}");
    let f: Vec<&str> = files.iter().map(|s| s.as_str()).collect();
    let seg = dir.join("seg.nii.gz");
    let s = json(&ok(&[&["segment", "--out", seg.to_str().unwrap()][..], &f].concat()));
    let bytes = std::fs::read(&seg).unwrap();
    let mask = seglrp::io::nifti::read_nifti(&bytes).unwrap().volume;
    let label = seglrp::io::nifti::read_nifti(&std::fs::read(study.join("label.nii.gz")).unwrap()).unwrap().volume;
    let (pred, truth): (Vec<u8>, Vec<u8>) =
        (mask.data.iter().map(|v| *v as u8).collect(), label.data.iter().map(|v| *v as u8).collect());
    let tumour = pred.iter().filter(|v| **v == 1).count();
    assert_eq!(s["tumour_voxels"].as_u64().unwrap() as usize, tumour);
    // nnU-Net's predictor is for nnU-Net folders: said, not attempted, on the liver model.
    let out = run(&[&["explain", "--predictor", "--voxel", "16,16,8"][..], &f].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs an nnU-Net model folder"), "{err}");
    assert_eq!(s["method"], "whole volume");
    assert!(tumour > 100, "patient 13 has a tumour the model finds ({tumour} voxels)");
    let dice = seglrp::spatial::metrics::dice(&pred, &truth).unwrap();
    assert!((s["dice"].as_f64().unwrap() - f64::from(dice)).abs() < 1e-6 && dice > 0.8, "Dice {dice} vs {}", s["dice"]);
    let sizes: u64 = s["components"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(sizes as usize, tumour);

    let fn_voxels = pred.iter().zip(&truth).filter(|(p, l)| **p == 0 && **l == 1).count();
    let e = json(&ok(&[&["explain", "--region", "fn"][..], &f].concat()));
    let x = &e["explanation"];
    assert_eq!(x["region"], "fn");
    assert_eq!(x["voxels"].as_u64().unwrap() as usize, fn_voxels);
    assert!((shares(&x["shares"]).iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert!(x["conservation"].as_f64().unwrap() > 0.0);

    // "All foreground" of a two-class model is its one foreground class; a class that is neither
    // an index nor "foreground" is refused in words.
    let raw = |n: &str| dir.join(n).display().to_string();
    let fg =
        json(&ok(&[&["explain", "--region", "fn", "--class", "foreground", "--raw", &raw("fg.f32")][..], &f].concat()));
    assert_eq!(
        (&fg["explanation"]["class"], &fg["explanation"]["class_name"]),
        (&serde_json::Value::Null, &"all foreground".into())
    );
    ok(&[&["explain", "--region", "fn", "--class", "1", "--raw", &raw("one.f32")][..], &f].concat());
    assert_eq!(std::fs::read(raw("fg.f32")).unwrap(), std::fs::read(raw("one.f32")).unwrap());
    // Regions chosen in a given segmentation: the model's own one gives the same map; a file
    // that is no segmentation of the model's classes is refused.
    let given = ["--prediction", seg.to_str().unwrap()];
    ok(&[&["explain", "--region", "fn", "--raw", &raw("given.f32")][..], &given, &f].concat());
    assert_eq!(std::fs::read(raw("given.f32")).unwrap(), std::fs::read(raw("one.f32")).unwrap());
    let t2 = f.iter().find(|p| p.ends_with("t2.nii.gz")).unwrap();
    let out = run(&[&["explain", "--region", "all", "--prediction", t2][..], &f].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not a class index 0 to 1"), "{err}");
    let out = run(&[&["explain", "--region", "all", "--class", "tumour"][..], &f].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("give a class index, or \"foreground\""), "{err}");

    // A box and the same box as a mask file give the same map.
    let boxed = json(&ok(&[
        &["explain", "--box", "40,30,15,60,50,25", "--raw", dir.join("box.f32").to_str().unwrap()][..],
        &f,
    ]
    .concat()));
    assert_eq!(boxed["explanation"]["voxels"], 20 * 20 * 10);
    let mut inside = mask.clone();
    for (i, v) in inside.data.iter_mut().enumerate() {
        let [nx, ny, _] = mask.dims;
        let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
        *v = f32::from((40..60).contains(&x) && (30..50).contains(&y) && (15..25).contains(&z));
    }
    std::fs::write(dir.join("box.nii"), seglrp::io::nifti::write_nifti(&inside, false)).unwrap();
    let masked = json(&ok(&[
        &["explain", "--mask", dir.join("box.nii").to_str().unwrap(), "--raw", dir.join("mask.f32").to_str().unwrap()]
            [..],
        &f,
    ]
    .concat()));
    assert_eq!(masked["explanation"]["region"], "mask");
    assert_eq!(std::fs::read(dir.join("box.f32")).unwrap(), std::fs::read(dir.join("mask.f32")).unwrap());
    // The same box propagated through the whole volume instead of its receptive field.
    ok(&[
        &["explain", "--box", "40,30,15,60,50,25", "--no-crop", "--raw", dir.join("whole.f32").to_str().unwrap()][..],
        &f,
    ]
    .concat());
    let floats = |name: &str| -> Vec<f32> {
        std::fs::read(dir.join(name))
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // The bundled weights as a plain `save_file(state_dict())` (no configuration inside): refused
    // with the way out, and with --config the same map.
    let bundled = dir.join("bundled.safetensors");
    ok(&["model", "bundled", "--out", bundled.to_str().unwrap()]);
    let bytes = std::fs::read(&bundled).unwrap();
    let config = seglrp::model::weights::config_of(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plain = safetensors::serialize(st.tensors(), None).unwrap();
    let (plain_path, config_path) = (dir.join("plain.safetensors"), dir.join("unet.json"));
    std::fs::write(&plain_path, plain).unwrap();
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    let model = ["--model", plain_path.to_str().unwrap()];
    let refused = run(&[&["explain", "--box", "40,30,15,60,50,25"][..], &model, &f].concat());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("give it with --config"), "{refused:?}");
    let plain_map = dir.join("plain.f32");
    let with_config = ["--config", config_path.to_str().unwrap(), "--raw", plain_map.to_str().unwrap()];
    ok(&[&["explain", "--box", "40,30,15,60,50,25"][..], &model, &with_config, &f].concat());
    assert_eq!(floats("plain.f32"), floats("box.f32"));
    let (cropped, whole) = (floats("box.f32"), floats("whole.f32"));
    let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = cropped.iter().zip(&whole).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(scale > 0.0 && diff <= 1e-5 * scale, "cropped vs whole volume: {diff} of {scale}");

    let without_label: Vec<&str> = f.iter().copied().filter(|p| !p.ends_with("label.nii.gz")).collect();
    let refused = run(&[&["explain", "--region", "tp"][..], &without_label].concat());
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("compares with the tumour label, and this study has none")
    );
    let refused = run(&[&["explain", "--region", "component"][..], &f].concat());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--region component needs --voxel"));
    let refused = run(&[&["explain", "--mask", seg.to_str().unwrap(), "--box", "0,0,0,1,1,1"][..], &f].concat());
    assert!(!refused.status.success(), "--mask and --box exclude each other");
}

/// A cohort with a broken study: the others are analysed, written and plotted, the run says
/// which study failed and exits non-zero; the table's shares are `seglrp explain`'s; a second
/// run skips finished patients and redoes only what an interruption lost.
#[test]
fn cohort_with_a_broken_study_resumes() {
    let dir = tmp("cohort");
    let input = dir.join("in");
    let out = dir.join("out");
    ok(&["phantoms", "--patients", "2,13", "--out", input.to_str().unwrap()]);
    std::fs::create_dir_all(input.join("broken")).unwrap();
    std::fs::write(input.join("broken/t2.nii.gz"), b"not a volume").unwrap();
    let args = [
        "cohort",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--regions",
        "all,fn",
        "--composite",
        "Epsilon",
    ];
    let first = run(&args);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(!first.status.success(), "a broken study makes the run fail at the end");
    assert!(
        stderr.contains("1 of 3 studies failed")
            && stderr.contains("broken:")
            && stderr.contains("not a readable NIfTI"),
        "{stderr}"
    );

    let csv = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..7], ["patient", "region", "voxels", "left_out", "dice", "explained_logits", "conservation"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| (r[0], r[1])).collect::<Vec<_>>(),
        [("patient02", "all"), ("patient02", "fn"), ("patient13", "all"), ("patient13", "fn")]
    );
    for r in rows.iter().filter(|r| !r[7].is_empty()) {
        let s: Vec<f64> = r[7..13].iter().map(|v| v.parse().unwrap()).collect();
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{r:?}");
        assert!(s.iter().all(|v| *v > 0.0), "every sequence carries some relevance: {r:?}");
        // Biases absorb or add relevance: for the confidently predicted tumour the input gets
        // about what the logits were (ε-LRP), for missed tumour (small logits) a multiple.
        let c: f64 = r[6].parse().unwrap();
        assert!(c.is_finite() && c > 0.0, "conservation {c}");
        if r[1] == "all" {
            assert!((0.5..2.0).contains(&c), "conservation {c} for the predicted tumour");
        }
    }
    // The table's numbers are the engine's for the same study and region.
    let p13 = files_of(&input.join("patient13"));
    let f: Vec<&str> = p13.iter().map(|s| s.as_str()).collect();
    let e = json(&ok(&[&["explain", "--region", "all", "--composite", "Epsilon"][..], &f].concat()));
    let row = &rows[2];
    assert_eq!(row[2], e["explanation"]["voxels"].to_string());
    assert_eq!(row[4].parse::<f32>().unwrap(), e["dice"].as_f64().unwrap() as f32);
    for (got, want) in row[7..13].iter().zip(shares(&e["explanation"]["shares"])) {
        assert!((got.parse::<f64>().unwrap() - want).abs() < 1e-6, "{got} vs {want}");
    }

    // Figures: the plot (one line per patient with a tumour) and a six-panel PNG per region.
    let svg = std::fs::read_to_string(out.join("parallel-all.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains("patient13") && svg.contains("T1 15 min"));
    assert_eq!(png_size(&out.join("parallel-all.png")), (1200, 700));
    let (w, h) = png_size(&out.join("figures/patient13-all.png"));
    assert!(w > 1000 && h > 600, "six panels: {w}×{h}");

    // Resume: nothing is redone; a patient whose result an interruption lost is redone alone.
    let stamp = |p: &str| std::fs::metadata(out.join("patients").join(p)).unwrap().modified().unwrap();
    let before = stamp("patient13.json");
    std::fs::remove_file(out.join("patients/patient02.json")).unwrap();
    std::fs::remove_dir_all(input.join("broken")).unwrap();
    let second = ok(&args);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("1 patient(s) already done"), "{stderr}");
    assert_eq!(stamp("patient13.json"), before, "a finished patient is not redone");
    assert_eq!(std::fs::read_to_string(out.join("cohort.csv")).unwrap(), csv, "the redone patient gives the same row");
    assert!(std::fs::read_dir(&out).unwrap().all(|e| !e.unwrap().path().display().to_string().ends_with(".partial")));

    // All foreground of a two-class model is its one foreground class: the same table.
    let fg = dir.join("fg");
    let mut with = args.to_vec();
    with[3] = fg.to_str().unwrap();
    ok(&[&with[..], &["--class", "foreground"]].concat());
    assert_eq!(std::fs::read_to_string(fg.join("cohort.csv")).unwrap(), csv);
}

/// `--gpu` (burn-wgpu natively) gives the CPU's numbers. `npm test` installs Mesa's lavapipe
/// (a Vulkan driver on the CPU) where there is no GPU; without any Vulkan/Metal/DirectX adapter
/// this test fails unless SEGLRP_SKIP_GPU=1 says that is expected.
#[cfg(feature = "gpu")]
#[test]
fn gpu_gives_the_cpu_numbers() {
    if std::env::var("SEGLRP_SKIP_GPU").is_ok_and(|v| v == "1") {
        eprintln!("SEGLRP_SKIP_GPU=1: the GPU path is not checked");
        return;
    }
    let dir = tmp("gpu");
    let study = dir.join("p13.nii.gz");
    // A small grid: lavapipe runs Vulkan compute on the CPU, slowly.
    ok(&["sample", "--patient", "13", "--dims", "48,40,16", "--out", study.to_str().unwrap()]);
    let s = study.to_str().unwrap();
    let relevance = |extra: &[&str], name: &str| -> (serde_json::Value, Vec<f32>) {
        let raw = dir.join(name);
        let out = run(&[
            &["explain", s, "--box", "20,16,6,28,24,10", "--composite", "Epsilon", "--raw", raw.to_str().unwrap()][..],
            extra,
        ]
        .concat());
        assert!(
            out.status.success(),
            "seglrp explain {extra:?} failed (no GPU adapter? install mesa-vulkan-drivers, or set SEGLRP_SKIP_GPU=1): \
                {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(raw).unwrap();
        (json(&out), bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    };
    let (cpu_summary, cpu) = relevance(&[], "cpu.f32");
    let (gpu_summary, gpu) = relevance(&["--gpu"], "gpu.f32");
    assert_eq!(gpu_summary["tumour_voxels"], cpu_summary["tumour_voxels"], "the same segmentation");
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = cpu.iter().zip(&gpu).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("GPU vs CPU: max |ΔM_A| {diff:e} at max |M_A| {scale:e}");
    assert!(scale > 0.0 && diff <= 1e-4 * scale, "GPU vs CPU: max |ΔM_A| {diff} at max |M_A| {scale}");
}

/// A file whose header claims 8 GiB of voxels, as a sparse 2.5 GB file: refused from the
/// header under a 1 GiB address-space limit (a reader that read it whole would fail with
/// "out of memory" instead); a valid image followed by 2.5 GB is read as far as its image.
#[test]
fn info_judges_a_huge_file_by_its_header() {
    let dir = tmp("huge");
    let v = seglrp::demo::phantom::phantom([6, 5, 4], 1).volume;
    let small = seglrp::io::nifti::write_nifti(
        &seglrp::io::volume::Volume { channels: 1, data: v.channel(0).to_vec(), ..v.clone() },
        false,
    );
    let mut claims = small.clone();
    for (i, d) in [2048i16, 2048, 512].iter().enumerate() {
        claims[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let sparse = |name: &str, head: &[u8]| {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &f, head).unwrap();
        f.set_len(2_500_000_000).unwrap();
        path.display().to_string()
    };
    let (big, padded) = (sparse("claims-8gib.nii", &claims), sparse("padded.nii", &small));
    let limited = |args: &str| {
        Command::new("sh").arg("-c").arg(format!("ulimit -v 1048576; exec {BIN} info {args}")).output().unwrap()
    };
    let out = limited(&big);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("claims-8gib.nii") && err.contains("this tool accepts at most"), "{err}");
    let out = limited(&format!("--json {padded}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let excess = 2_500_000_000 - small.len();
    let j = json(&out);
    assert_eq!(j[0]["info"]["dims"], serde_json::json!([6, 5, 4]));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!(
        "{excess} bytes after the image data were \
        ignored"
    )));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `info` reports each file on its own (a missing or damaged file among good ones); the
/// reasons go to stderr, also with --json.
#[test]
fn info_reports_every_file_and_says_why_on_stderr() {
    let dir = tmp("info");
    let good = dir.join("t2.nii.gz");
    let v = seglrp::demo::phantom::phantom([6, 5, 4], 1).volume;
    let bytes = seglrp::io::nifti::write_nifti(
        &seglrp::io::volume::Volume { channels: 1, data: v.channel(0).to_vec(), ..v.clone() },
        true,
    );
    std::fs::write(&good, &bytes).unwrap();
    let mut bad_crc = bytes.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 1;
    let damaged = dir.join("damaged.nii.gz");
    std::fs::write(&damaged, &bad_crc).unwrap();
    let missing = dir.join("missing.nii.gz");
    let (g, d, m) = (good.to_str().unwrap(), damaged.to_str().unwrap(), missing.to_str().unwrap());
    for json_flag in [false, true] {
        let args: Vec<&str> = if json_flag { vec!["info", "--json", g, m, d] } else { vec!["info", g, m, d] };
        let out = run(&args);
        assert!(!out.status.success());
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("t2.nii.gz") && stdout.contains("6 × 5 × 4") || json_flag, "{stdout}");
        assert!(stderr.contains("missing.nii.gz: the file cannot be opened"), "{stderr}");
        assert!(stderr.contains("damaged.nii.gz: the file is damaged: its gzip checksum does not match"), "{stderr}");
        assert!(stderr.contains("2 of 3 file(s) could not be read"), "{stderr}");
        if json_flag {
            let j = json(&out);
            assert_eq!(j.as_array().unwrap().len(), 3);
            assert_eq!(j[0]["info"]["dims"], serde_json::json!([6, 5, 4]));
            assert!(j[1]["error"].as_str().unwrap().contains("cannot be opened"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A study whose sequence is all NaN is refused naming the file; a few NaN voxels are set to 0
/// and counted in the JSON.
#[test]
fn explain_refuses_meaningless_sequences_and_counts_nan() {
    let dir = tmp("nan");
    let study = dir.join("p");
    ok(&["sample", "--patient", "3", "--dims", "32,32,16", "--dir", study.to_str().unwrap()]);
    let target = study.join("t1_20s.nii.gz");
    let original = seglrp::io::nifti::read_nifti(&std::fs::read(&target).unwrap()).unwrap().volume;
    let with = |edit: &dyn Fn(&mut Vec<f32>)| {
        let mut v = original.clone();
        edit(&mut v.data);
        std::fs::write(&target, seglrp::io::nifti::write_nifti(&v, true)).unwrap();
    };
    let files = files_of(&study);
    let f: Vec<&str> = files.iter().map(|s| s.as_str()).collect();
    with(&|d| d.fill(f32::NAN));
    let out = run(&[&["explain", "--region", "all"][..], &f].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t1_20s.nii.gz (T1 20 s) cannot be segmented or explained: all its 16384 voxels are NaN"),
        "{err}"
    );
    with(&|d| d.fill(7.0));
    let err = String::from_utf8_lossy(&run(&[&["segment", "--out", "/dev/null"][..], &f].concat()).stderr).to_string();
    assert!(err.contains("every voxel has the value 7"), "{err}");
    with(&|d| d[..100].fill(f32::NAN));
    let out = ok(&[&["explain", "--voxel", "16,16,8"][..], &f].concat());
    assert_eq!(json(&out)["non_finite_voxels"], serde_json::json!([0, 0, 100, 0, 0, 0]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("100 NaN or infinite voxels of T1 20 s were set to 0"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parts of a cohort share OUT, write no table, and merge into the single run's table; results
/// of different settings are not mixed. (A real Slurm job array: tests/slurm.sh.)
#[test]
fn cohort_parts_merge_and_refuse_mixed_settings() {
    let dir = tmp("parts");
    let (input, out, single) = (dir.join("in"), dir.join("out"), dir.join("single"));
    // Patients 4 and 5 have no tumour (quick), and fall in different shares of 2.
    ok(&["phantoms", "--patients", "4,5", "--out", input.to_str().unwrap()]);
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let part = |k: &str, composite: &str| {
        run(&["cohort", i, "--out", o, "--parts", "2", "--part", k, "--composite", composite, "--jobs", "1"])
    };
    assert!(part("0", "Epsilon").status.success());
    assert!(!out.join("cohort.csv").exists(), "a part writes no table");
    let p1 = part("1", "EpsilonGammaBox");
    assert!(String::from_utf8_lossy(&p1.stderr).contains("part 1 of 2: 1 of the cohort's 2 patients"));
    let merged = run(&["cohort", "merge", o]);
    let err = String::from_utf8_lossy(&merged.stderr);
    assert!(
        !merged.status.success()
            && err.contains("different settings")
            && err.contains("composite Epsilon,")
            && err.contains("composite EpsilonGammaBox"),
        "{err}"
    );
    // The same part with the first part's settings: its patient is redone, then they merge.
    assert!(part("1", "Epsilon").status.success());
    ok(&["cohort", "merge", o]);
    ok(&["cohort", i, "--out", single.to_str().unwrap(), "--composite", "Epsilon"]);
    let table = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    assert_eq!(table, std::fs::read_to_string(single.join("cohort.csv")).unwrap());
    assert_eq!(table.lines().count(), 3);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["patients"], 2);
    assert_eq!(summary["missing"], serde_json::json!([]));
    let status = String::from_utf8_lossy(&ok(&["cohort", "status", o]).stdout).to_string();
    assert!(
        status.contains("part 0 of 2")
            && status.contains(": done")
            && status.contains("all parts: 2 of 2 patient(s) finished, 0 failed, 0 to do"),
        "{status}"
    );
    let bad = run(&["cohort", i, "--out", o, "--parts", "2", "--part", "2"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("parts are numbered 0 to 1"));
    assert!(!run(&["cohort", i, "--out", o, "--parts", "2"]).status.success(), "--parts needs --part");
    let _ = std::fs::remove_dir_all(&dir);
}
