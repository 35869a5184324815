//! A study: the six sequences the model reads (and optionally a tumour label) on one grid,
//! assembled from whatever files the user brings — one 4-D file with six volumes, or six 3-D
//! files recognised by name (the page lets the user correct the guess), `.hdr`/`.img` pairs
//! included. Sequences on other grids are resampled onto the finest (for a model's card,
//! [`assemble_channels`], onto the grid of a channel the user picks if any), in world coordinates
//! (`resample.rs`); a label on another grid takes the nearest voxel.
//! A study whose channel carries no information (constant, mostly NaN, nothing above the body
//! threshold) is refused here, naming the file, rather than segmented into meaningless numbers.

use std::io::Read;

use serde::Serialize;

use crate::io::nifti::{check_header, read_nifti_from, read_nifti_pair_from, FileInfo, ImgFile};
use crate::io::resample::{resample, Grid, Interpolation};
use crate::io::volume::{Volume, SEQUENCES};

/// A channel with more than this fraction of NaN or infinite voxels is refused. Fewer are set
/// to 0 (the value outside the body after normalisation) and counted: registered or
/// skull-stripped images often carry NaN outside their field of view, but an image that is
/// mostly undefined is not one a network was trained on.
pub const MAX_NON_FINITE_FRACTION: f64 = 0.5;

type Opener<'a> = Box<dyn Fn() -> std::io::Result<(Box<dyn Read + 'a>, u64)> + 'a>;

/// A file as the user gave it: its name and a way to stream its bytes (from memory, or from
/// disk natively), with its length. Files are streamed, not held, so that one is judged by its
/// header before its voxels are read.
pub struct Input<'a> {
    pub name: String,
    open: Opener<'a>,
}

impl<'a> Input<'a> {
    /// A whole file in memory.
    pub fn bytes(name: impl Into<String>, bytes: &'a [u8]) -> Input<'a> {
        Input::prefix(name, bytes, bytes.len() as u64)
    }

    /// The first bytes of a file of `len` bytes (the page reads only the part its header
    /// needs, [`crate::io::nifti::check_header`]; the rest is reported as ignored).
    pub fn prefix(name: impl Into<String>, bytes: &'a [u8], len: u64) -> Input<'a> {
        Input { name: name.into(), open: Box::new(move || Ok((Box::new(bytes) as Box<dyn Read>, len))) }
    }

    /// A file on disk, opened when it is read (a missing file is that file's error only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn path(path: &std::path::Path) -> Input<'static> {
        let p = path.to_path_buf();
        Input {
            name: path.display().to_string(),
            open: Box::new(move || {
                let f = std::fs::File::open(&p)?;
                let meta = f.metadata()?;
                if meta.is_dir() {
                    return Err(std::io::Error::other("this is a folder, not a file"));
                }
                Ok((Box::new(f) as Box<dyn Read>, meta.len()))
            }),
        }
    }

    fn open(&self) -> Result<(Box<dyn Read + 'a>, u64), String> {
        (self.open)().map_err(|e| format!("the file cannot be opened ({e})"))
    }
}

/// Reads one single-file NIfTI input.
pub fn read_input(input: &Input) -> Result<crate::io::nifti::Nifti, String> {
    let (r, len) = input.open()?;
    read_nifti_from(r, Some(len)).map_err(|e| e.to_string())
}

/// Reads a `.hdr` input with its `.img`.
fn read_pair(hdr: &Input, img: &Input) -> Result<crate::io::nifti::Nifti, String> {
    let (h, h_len) = hdr.open()?;
    let (i, i_len) = img.open()?;
    read_nifti_pair_from(h, Some(h_len), i, Some(i_len)).map_err(|e| e.to_string())
}

/// Checks a file by its first bytes before it is read ([`check_header`]); for a `.hdr`, with
/// its `.img`'s length and first bytes. DICOM files and `.zip` archives are read whole (their
/// series are judged together, [`read_files`]).
/// Whether a file is read whole rather than header first, from its name and first bytes
/// (`head`, up to 132): DICOM (by its magic, or a DICOM-like name where the preamble is missing),
/// a `.zip`, or a gzipped DICOM file (`.dcm.gz`, `.ima.gz`). The page's check, the reader and the
/// command line's folder walk all ask this.
pub fn read_whole(name: &str, head: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    crate::io::dicom::is_dicom(name, head)
        || head.starts_with(b"PK\x03\x04")
        || lower.ends_with(".dcm.gz")
        || lower.ends_with(".ima.gz")
}

pub fn check_prefix(
    name: &str,
    prefix: &[u8],
    len: u64,
    img_start: Option<&[u8]>,
) -> Result<crate::io::nifti::ReadPlan, String> {
    if read_whole(name, prefix) {
        return Ok(crate::io::nifti::ReadPlan { read: None, gzip: false });
    }
    let img = img_start.map(|b| ImgFile { gzip: b.starts_with(&[0x1f, 0x8b]) });
    check_header(prefix, len, img).map_err(|e| e.to_string())
}

/// Largest difference between two files' affines (mm) that still counts as one grid.
pub const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// File names SegLRP writes for a study's parts (`seglrp phantoms`, exports).
pub const FILE_STEMS: [&str; 6] = ["t2", "t1_plain", "t1_20s", "t1_60s", "t1_120s", "t1_15min"];

/// What a file contributes to the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// One sequence, index into [`SEQUENCES`].
    Sequence(usize),
    /// A 4-D file holding all six sequences as volumes, in [`SEQUENCES`] order.
    AllSequences,
    /// Tumour label: 0 background, 1 tumour.
    Label,
    Unused,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Sequence(i) => SEQUENCES[i],
            Role::AllSequences => "all sequences",
            Role::Label => "label",
            Role::Unused => "unused",
        }
    }

    /// Every role's name, in the page's menu order: the sequences, then the rest.
    pub fn names() -> Vec<&'static str> {
        SEQUENCES.iter().copied().chain(["all sequences", "label", "unused"]).collect()
    }

    /// Inverse of [`Role::name`] (the page's menus send these names back).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "all sequences" => Some(Role::AllSequences),
            "label" => Some(Role::Label),
            "unused" => Some(Role::Unused),
            _ => SEQUENCES.iter().position(|s| *s == name).map(Role::Sequence),
        }
    }

    /// The role a file's name and shape suggest. Tokens are compared, not substrings, so
    /// that "t1_120s" is not read as 20 s; "20 s" and "20s" are the same token.
    pub fn guess(file_name: &str, channels: usize) -> Role {
        if channels > 1 {
            return Role::AllSequences;
        }
        let t = tokens(file_name);
        let any = |words: &[&str]| t.iter().any(|tok| words.contains(&tok.as_str()));
        if any(&[
            "label",
            "labels",
            "seg",
            "segmentation",
            "mask",
            "gt",
            "truth",
            "groundtruth",
            "annotation",
            "tumour",
            "tumor",
        ]) {
            Role::Label
        } else if any(&["15min", "900s", "hbp", "hepatobiliary"]) {
            Role::Sequence(5)
        } else if any(&["120s", "2min", "transitional", "delayed", "late", "equilibrium"]) {
            Role::Sequence(4)
        } else if any(&["60s", "1min", "portal", "pv", "venous", "portalvenous"]) {
            Role::Sequence(3)
        } else if any(&["20s", "arterial", "art"]) {
            Role::Sequence(2)
        } else if t.iter().any(|tok| tok.starts_with("t2")) {
            Role::Sequence(0)
        } else if any(&["plain", "native", "pre", "precontrast", "unenhanced"])
            || t.iter().any(|tok| tok.starts_with("t1"))
        {
            Role::Sequence(1)
        } else {
            Role::Unused
        }
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

fn strip_extension(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img", ".gz"] {
        if lower.ends_with(ext) {
            return &name[..name.len() - ext.len()];
        }
    }
    name
}

fn tokens(file_name: &str) -> Vec<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = strip_extension(base).to_ascii_lowercase();
    let words: Vec<&str> = stem.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let unit = matches!(w, "s" | "sec" | "secs" | "min" | "mins");
        match out.last_mut() {
            Some(prev) if unit && prev.chars().all(|c| c.is_ascii_digit()) => {
                prev.push_str(if w.starts_with('s') { "s" } else { "min" })
            }
            _ => out.push(w.to_string()),
        }
    }
    for tok in &mut out {
        for (long, short) in [("sec", "s"), ("secs", "s"), ("mins", "min")] {
            if let Some(num) = tok.strip_suffix(long) {
                if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) {
                    *tok = format!("{num}{short}");
                }
            }
        }
    }
    out
}

/// One file as the user gave it, and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// The file's name (a pair is named by its `.hdr`; a DICOM series by its description and
    /// number, [`crate::io::dicom::Series::name`]).
    pub name: String,
    pub role: Role,
    pub info: Option<FileInfo>,
    /// Why the file could not be read, in words for the user.
    pub error: Option<String>,
    /// Listed with its reason but no obstacle to the study: what a folder from a scanner holds
    /// beside its series (a localizer, a DICOMDIR, a report).
    pub aside: bool,
    #[serde(skip)]
    pub volume: Option<Volume>,
}

impl FileReport {
    fn read(name: String, result: Result<(FileInfo, Volume), String>) -> FileReport {
        match result {
            Ok((info, volume)) => FileReport {
                role: Role::guess(&name, volume.channels),
                name,
                info: Some(info),
                error: None,
                aside: false,
                volume: Some(volume),
            },
            Err(e) => FileReport { name, role: Role::Unused, info: None, error: Some(e), aside: false, volume: None },
        }
    }
}

/// The errors that stop a study (`name: error`): those of files given for it, not those set
/// [`FileReport::aside`].
pub fn blocking_errors(reports: &[FileReport]) -> Vec<String> {
    reports.iter().filter(|r| !r.aside).filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name))).collect()
}

/// What a file is, from its first bytes (and, for DICOM without its preamble, its name).
enum Kind {
    Dicom(Vec<u8>),
    Zip(Vec<u8>),
    Other,
}

fn kind(input: &Input) -> Result<Kind, String> {
    let (mut r, len) = input.open()?;
    let mut head = Vec::new();
    (&mut r).take(132).read_to_end(&mut head).map_err(|e| format!("the file cannot be read ({e})"))?;
    if !read_whole(&input.name, &head) {
        return Ok(Kind::Other);
    }
    let zip = head.starts_with(b"PK\x03\x04");
    let lower = input.name.to_ascii_lowercase();
    let gz_dicom = head.starts_with(&[0x1f, 0x8b]) && (lower.ends_with(".dcm.gz") || lower.ends_with(".ima.gz"));
    let mut bytes = Vec::with_capacity(len.min(1 << 30) as usize);
    bytes.extend_from_slice(&head);
    r.read_to_end(&mut bytes).map_err(|e| format!("the file cannot be read ({e})"))?;
    if gz_dicom {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(crate::io::nifti::MAX_DATA_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| format!("the gzip stream is broken ({e})"))?;
        return Ok(Kind::Dicom(out));
    }
    Ok(if zip { Kind::Zip(bytes) } else { Kind::Dicom(bytes) })
}

/// Reads every file, pairing `x.hdr` with `x.img` (either may be gzipped). DICOM files are read
/// together as series (io/dicom.rs), one report per series; a `.zip` is opened and its files read
/// as if given one by one. A file that cannot be read gets its error in its report; the others
/// are unaffected.
pub fn read_files(files: &[Input]) -> Vec<FileReport> {
    // Reports keep the order the files were given in: each is keyed by its input's position (a
    // zip's files, and DICOM series, by the position of the first file they came from).
    let mut dicom: Vec<(String, Vec<u8>)> = Vec::new();
    let mut dicom_at = None;
    let mut unpacked: Vec<(String, Vec<u8>)> = Vec::new();
    let mut unpacked_at = Vec::new();
    let (mut plain, mut plain_at) = (Vec::new(), Vec::new());
    let mut reports: Vec<(usize, FileReport)> = Vec::new();
    for (i, input) in files.iter().enumerate() {
        match kind(input) {
            Ok(Kind::Other) => {
                plain.push(input);
                plain_at.push(i);
            }
            Ok(Kind::Dicom(bytes)) => {
                dicom.push((input.name.clone(), bytes));
                dicom_at.get_or_insert(i);
            }
            Ok(Kind::Zip(bytes)) => match crate::io::archive::unzip(&bytes, |_| true, crate::io::archive::MAX_BYTES) {
                Ok(members) => {
                    for (name, b) in members {
                        let name = format!("{}/{name}", input.name);
                        if crate::io::dicom::is_dicom(&name, &b) {
                            dicom.push((name, b));
                            dicom_at.get_or_insert(i);
                        } else {
                            unpacked.push((name, b));
                            unpacked_at.push(i);
                        }
                    }
                }
                Err(e) => reports.push((i, FileReport::read(input.name.clone(), Err(e)))),
            },
            Err(e) => reports.push((i, FileReport::read(input.name.clone(), Err(e)))),
        }
    }
    let unpacked_inputs: Vec<Input> = unpacked.iter().map(|(n, b)| Input::bytes(n.clone(), b)).collect();
    reports.extend(read_nifti_files(&plain).into_iter().map(|(k, r)| (plain_at[k], r)));
    let unpacked_refs: Vec<&Input> = unpacked_inputs.iter().collect();
    reports.extend(read_nifti_files(&unpacked_refs).into_iter().map(|(k, r)| (unpacked_at[k], r)));
    if let Some(at) = dicom_at {
        reports.extend(dicom_reports(&dicom).into_iter().map(|r| (at, r)));
    }
    // A stable sort: a zip's files and the series keep their own order.
    reports.sort_by_key(|(at, _)| *at);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// One report per DICOM series; series that cannot be a volume, and files holding no image, set
/// aside with their reason (unless nothing else was found: then they are the drop's errors).
fn dicom_reports(files: &[(String, Vec<u8>)]) -> Vec<FileReport> {
    let read = crate::io::dicom::read(files);
    let found = !read.series.is_empty();
    let mut out: Vec<FileReport> =
        read.series.into_iter().map(|s| FileReport::read(s.name, Ok((s.info, s.volume)))).collect();
    for (name, why) in read.refused.into_iter().chain(read.skipped) {
        out.push(FileReport { aside: found, ..FileReport::read(name, Err(why)) });
    }
    out
}

/// The NIfTI files (pairs joined), each report with the position of its file in `files`.
fn read_nifti_files(files: &[&Input]) -> Vec<(usize, FileReport)> {
    let lower: Vec<String> = files.iter().map(|f| f.name.to_ascii_lowercase()).collect();
    let is = |i: usize, exts: &[&str]| exts.iter().any(|e| lower[i].ends_with(e));
    let stem = |i: usize| strip_extension(&lower[i]).to_string();
    let mut reports = Vec::new();
    for (i, input) in files.iter().enumerate() {
        let name = &input.name;
        let result = if is(i, &[".img", ".img.gz"]) {
            if (0..files.len()).any(|j| is(j, &[".hdr", ".hdr.gz"]) && stem(j) == stem(i)) {
                continue; // read with its header
            }
            Err(format!("{name} is the image half of a .hdr/.img pair; give its .hdr file together with it"))
        } else if is(i, &[".hdr", ".hdr.gz"]) {
            match (0..files.len()).find(|j| is(*j, &[".img", ".img.gz"]) && stem(*j) == stem(i)) {
                Some(j) => read_pair(input, files[j]),
                None => {
                    Err(format!("{name} is the header half of a .hdr/.img pair; give its .img file together with it"))
                }
            }
        } else {
            read_input(input)
        };
        reports.push((i, FileReport::read(name.clone(), result.map(|n| (n.info, n.volume)))));
    }
    reports
}

#[derive(Clone, Debug, PartialEq)]
pub enum StudyError {
    Missing(Vec<&'static str>),
    Duplicate {
        role: &'static str,
        first: String,
        second: String,
    },
    WrongShape {
        name: String,
        role: &'static str,
        channels: usize,
    },
    GridMismatch {
        first: String,
        second: String,
        detail: String,
    },
    /// A sequence or label could not be moved onto the study's grid.
    Resampling(String),
    BadLabel {
        name: String,
        detail: String,
    },
    /// A channel that carries no information: constant, mostly NaN, nothing above background.
    Meaningless {
        name: String,
        channel: &'static str,
        detail: String,
    },
}

impl std::fmt::Display for StudyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StudyError::Missing(which) => write!(
                f,
                "the study is incomplete: no file for {}. Add the missing sequence files, or assign a file to each \
                    sequence",
                which.join(", ")
            ),
            StudyError::Duplicate { role, first, second } => {
                write!(f, "both {first} and {second} are assigned as {role}; assign each role to one file")
            }
            StudyError::WrongShape { name, role, channels } if *role == "all sequences" => write!(
                f,
                "{name} has {channels} volume(s), but a 4-D study file must hold 6 (T2, T1 plain, T1 20 s, 60 s, 120 \
                    s, 15 min, in this order)"
            ),
            StudyError::WrongShape { name, role, channels } => {
                write!(f, "{name} has {channels} volumes, so it cannot be the single 3-D image for {role}")
            }
            StudyError::GridMismatch { first, second, detail } => write!(
                f,
                "{first} and {second} are not on the same voxel grid ({detail}); move one onto the other's grid \
                    first (seglrp resample FILE --like OTHER, with --nearest for a mask)"
            ),
            StudyError::Resampling(detail) => write!(f, "{detail}"),
            StudyError::BadLabel { name, detail } => write!(f, "{name} cannot be the tumour label: {detail}"),
            StudyError::Meaningless { name, channel, detail } => write!(
                f,
                "{name} ({channel}) cannot be segmented or explained: {detail}. Check that this is the right file and \
                    that it was exported correctly"
            ),
        }
    }
}

impl std::error::Error for StudyError {}

/// Six sequences (channels in [`SEQUENCES`] order) on one grid, with an optional label.
#[derive(Clone, Debug, PartialEq)]
pub struct Study {
    pub volume: Volume,
    /// 0 background, 1 tumour; one byte per voxel, file order.
    pub label: Option<Vec<u8>>,
    /// The file each sequence came from.
    pub sources: Vec<String>,
    /// NaN or infinite voxels per channel that were set to 0 (at most
    /// [`MAX_NON_FINITE_FRACTION`] of a channel; more is refused).
    pub non_finite: Vec<usize>,
    /// What was moved onto the study's grid, in words (files on other grids are resampled in
    /// world coordinates: [`assemble_channels`]).
    pub resampled: Vec<String>,
}

/// Whether two volumes share one voxel grid (dimensions and affine within [`AFFINE_TOLERANCE_MM`]).
pub fn same_grid(a: (&str, &Volume), b: (&str, &Volume)) -> Result<(), StudyError> {
    let mismatch =
        |detail: String| StudyError::GridMismatch { first: a.0.to_string(), second: b.0.to_string(), detail };
    if a.1.dims != b.1.dims {
        let d = |v: &Volume| v.dims.map(|x| x.to_string()).join("×");
        return Err(mismatch(format!("dimensions {} vs {}", d(a.1), d(b.1))));
    }
    let (diff, row, col) = a.1.affine.max_difference(&b.1.affine);
    if !(diff <= AFFINE_TOLERANCE_MM) {
        let what = if col == 3 { "origin" } else { "axis direction/voxel size" };
        return Err(mismatch(format!(
            "their voxel-to-world affines differ by {diff:.4} mm at row {}, column {} ({what}); allowed: \
                {AFFINE_TOLERANCE_MM} mm",
            row + 1,
            col + 1
        )));
    }
    Ok(())
}

/// Builds the study from files and their roles (`Unused` files are ignored).
pub fn assemble(parts: &[(&str, &Volume, Role)]) -> Result<Study, StudyError> {
    let mut slots: [Option<(&str, &Volume)>; 6] = [None; 6];
    let mut all: Option<(&str, &Volume)> = None;
    let mut label: Option<(&str, &Volume)> = None;
    let dup = |role: &'static str, first: &str, second: &str| StudyError::Duplicate {
        role,
        first: first.to_string(),
        second: second.to_string(),
    };
    for &(name, vol, role) in parts {
        let want_channels = if role == Role::AllSequences { 6 } else { 1 };
        if role != Role::Unused && vol.channels != want_channels {
            return Err(StudyError::WrongShape { name: name.to_string(), role: role.name(), channels: vol.channels });
        }
        let slot = match role {
            Role::Sequence(i) => &mut slots[i],
            Role::AllSequences => &mut all,
            Role::Label => &mut label,
            Role::Unused => continue,
        };
        if let Some((first, _)) = slot {
            return Err(dup(role.name(), first, name));
        }
        *slot = Some((name, vol));
    }
    let mut resampled = Vec::new();
    let (reference, volume, sources) = match all {
        Some((name, vol)) => {
            if let Some((other, _)) = slots.iter().flatten().next() {
                return Err(dup("a sequence", name, other));
            }
            ((name, vol), vol.clone(), vec![name.to_string(); 6])
        }
        None => {
            let missing: Vec<&'static str> = (0..6).filter(|i| slots[*i].is_none()).map(|i| SEQUENCES[i]).collect();
            if !missing.is_empty() {
                return Err(StudyError::Missing(missing));
            }
            let seqs: Vec<(&str, &Volume)> = slots.iter().flatten().copied().collect();
            // Sequences on other grids are resampled onto the finest, as for any model.
            let reference = finest(&seqs);
            let (data, notes) = on_one_grid(&seqs, reference).map_err(StudyError::Resampling)?;
            resampled = notes;
            let volume = Volume { channels: 6, data, ..reference.1.clone() };
            (reference, volume, seqs.iter().map(|(n, _)| n.to_string()).collect())
        }
    };
    let moved;
    let label = match label {
        None => None,
        Some((name, vol)) => {
            // A label on another grid takes the nearest voxel: 0/1 is not blended.
            let vol = if same_grid(reference, (name, vol)).is_ok() {
                vol
            } else {
                moved = resample(vol, &Grid::of(reference.1), Interpolation::Nearest)
                    .map_err(|e| StudyError::Resampling(format!("{name}: {e}")))?;
                resampled.push(moved_note(name, vol, reference));
                &moved
            };
            if let Some(v) = vol.data.iter().find(|v| **v != 0.0 && **v != 1.0) {
                return Err(StudyError::BadLabel {
                    name: name.to_string(),
                    detail: format!(
                        "it contains the value {v}, but a label must hold only 0 (background) and 1 (tumour)"
                    ),
                });
            }
            Some(vol.data.iter().map(|v| *v as u8).collect())
        }
    };
    for c in 0..volume.channels {
        meaningful(&sources[c], c, &volume)?;
    }
    let non_finite = vec![0; volume.channels];
    Ok(Study { volume, label, sources, non_finite, resampled })
}

/// Refuses a channel the network can read nothing from: constant (all zero, all one value —
/// an all-NaN image read as zeros included), or with no voxel above its body threshold (after
/// normalisation it would be all zero, as outside the body).
fn meaningful(name: &str, c: usize, volume: &Volume) -> Result<(), StudyError> {
    let ch = volume.channel(c);
    let err = |detail: String| StudyError::Meaningless { name: name.to_string(), channel: SEQUENCES[c], detail };
    let (min, max) = ch.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    if min == max {
        return Err(err(format!("every voxel has the value {min}, so it carries no image")));
    }
    let t = volume.body_threshold(c);
    if !ch.iter().any(|v| *v > t) {
        return Err(err(format!(
            "no voxel is above its body threshold ({t}; 5 % of the 99th percentile, at least 0): its values run from \
                {min} to {max}, and the network reads only positive intensities"
        )));
    }
    Ok(())
}

/// Refuses a channel or label whose NaN/infinite voxels exceed what can be replaced.
fn check_non_finite(
    name: &str,
    what: &'static str,
    count: usize,
    voxels: usize,
    label: bool,
) -> Result<(), StudyError> {
    if count == 0 {
        return Ok(());
    }
    if label {
        return Err(StudyError::BadLabel {
            name: name.to_string(),
            detail: format!("{count} of its voxels are NaN or infinite; a label must hold only 0 and 1"),
        });
    }
    let detail = if count == voxels {
        format!("all its {voxels} voxels are NaN or infinite")
    } else {
        format!(
            "{count} of its {voxels} voxels ({:.1} %) are NaN or infinite, more than the {} % that can be set to 0",
            100.0 * count as f64 / voxels as f64,
            100.0 * MAX_NON_FINITE_FRACTION
        )
    };
    if count == voxels || count as f64 > MAX_NON_FINITE_FRACTION * voxels as f64 {
        return Err(StudyError::Meaningless { name: name.to_string(), channel: what, detail });
    }
    Ok(())
}

/// Roles for the reports: the user's choice where given (by file name), else the guess.
pub fn assemble_reports(reports: &mut [FileReport], chosen: &[(String, Role)]) -> Result<Study, StudyError> {
    for r in reports.iter_mut() {
        if let Some((_, role)) = chosen.iter().find(|(n, _)| *n == r.name) {
            r.role = *role;
        }
    }
    // NaN is checked before assembly: the reader has set those voxels to 0 already.
    let mut non_finite = vec![0; SEQUENCES.len()];
    for r in reports.iter() {
        let (Some(info), Some(vol)) = (&r.info, &r.volume) else { continue };
        let per = &info.non_finite_by_volume;
        match r.role {
            Role::Sequence(i) => {
                check_non_finite(&r.name, SEQUENCES[i], per[0], vol.voxels(), false)?;
                non_finite[i] = per[0];
            }
            Role::AllSequences => {
                for (i, count) in per.iter().enumerate().take(SEQUENCES.len()) {
                    check_non_finite(&r.name, SEQUENCES[i], *count, vol.voxels(), false)?;
                    non_finite[i] = *count;
                }
            }
            Role::Label => check_non_finite(&r.name, "label", info.non_finite, vol.voxels(), true)?,
            Role::Unused => {}
        }
    }
    let parts: Vec<(&str, &Volume, Role)> =
        reports.iter().filter_map(|r| r.volume.as_ref().map(|v| (r.name.as_str(), v, r.role))).collect();
    let mut study = assemble(&parts)?;
    study.non_finite = non_finite;
    Ok(study)
}

/// The channel called `name` (case, spaces and punctuation aside), as `--role` and `--grid` name it.
fn named_channel(name: &str, channels: &[String]) -> Option<usize> {
    channels.iter().position(|c| squeeze(c) == squeeze(name))
}

/// Letters and digits of a name, lower case: how channel names and file-name tokens are compared
/// ("T1ce" = "t1ce", "T1 20 s" = "t120s").
fn squeeze(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The channel of `channels` a file name names: a token equal to a channel's name (`case_t1ce`
/// → "T1ce"), or nnU-Net's four-digit channel suffix (`case_0002` → channel 2).
pub fn channel_of(file_name: &str, channels: &[String]) -> Option<usize> {
    let t = tokens(file_name);
    if let Some(c) = channels.iter().position(|c| t.iter().any(|tok| *tok == squeeze(c))) {
        return Some(c);
    }
    let last = t.last()?;
    (last.len() == 4 && last.chars().all(|c| c.is_ascii_digit()))
        .then(|| last.parse::<usize>().ok())
        .flatten()
        .filter(|&i| i < channels.len())
}

/// Which file is which part of a study for a model's card: [`assign_channels`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assignment {
    /// Per channel, the index (into the reports) of the 3-D file that is that channel.
    pub channels: Vec<Option<usize>>,
    /// A 4-D file holding every channel in the card's order, instead of `channels`.
    pub all: Option<usize>,
    pub label: Option<usize>,
    /// The channel whose grid the study takes; `None`: the finest among them.
    pub grid: Option<usize>,
}

/// The role name of a 4-D file holding every channel of a model's card.
pub const ALL_CHANNELS: &str = "all channels";

impl Assignment {
    /// The study on the grid of the channel named `grid` ("" = the finest of the channels).
    pub fn with_grid(mut self, grid: &str, channels: &[String]) -> Result<Assignment, String> {
        self.grid = match grid {
            "" => None,
            g => Some(
                named_channel(g, channels)
                    .ok_or_else(|| format!("--grid {g}: not one of the model's channels ({})", channels.join(", ")))?,
            ),
        };
        Ok(self)
    }

    /// Each report's role in words, as the page's file list shows it and sends it back: a
    /// channel's name, [`ALL_CHANNELS`], "label" or "unused".
    pub fn roles(&self, reports: usize, channels: &[String]) -> Vec<String> {
        (0..reports)
            .map(|i| {
                if self.all == Some(i) {
                    ALL_CHANNELS.to_string()
                } else if self.label == Some(i) {
                    "label".to_string()
                } else if let Some(c) = self.channels.iter().position(|s| *s == Some(i)) {
                    channels[c].clone()
                } else {
                    "unused".to_string()
                }
            })
            .collect()
    }
}

/// Which readable file is which channel of a model whose card names its channels: each 3-D
/// file is the channel its name names ([`channel_of`]), or the one `chosen` gives it
/// (`(file, channel name)`; "label" for the label, "unused" to leave it out, [`ALL_CHANNELS`]
/// for a 4-D file); a file whose name names no channel takes the first channel still free, in
/// the order given; one 4-D file may hold every channel in the card's order. Channels may stay
/// without a file (the study is then incomplete: [`assemble_channels`] says which).
pub fn assign_channels(
    reports: &[FileReport],
    channels: &[String],
    chosen: &[(String, String)],
) -> Result<Assignment, String> {
    let n = channels.len();
    let mut a = Assignment { channels: vec![None; n], ..Assignment::default() };
    let mut images: Vec<(usize, Option<&str>)> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let Some(vol) = &r.volume else { continue };
        let choice = chosen.iter().find(|(f, _)| *f == r.name).map(|(_, c)| c.as_str());
        let is_label = choice == Some("label")
            || (choice.is_none() && vol.channels == 1 && Role::guess(&r.name, 1) == Role::Label);
        if choice == Some("unused") {
            continue;
        }
        if !is_label {
            images.push((i, choice.filter(|c| *c != ALL_CHANNELS)));
        } else if let Some(first) = a.label {
            return Err(format!(
                "both {} and {} look like the label; say which with --role FILE=label",
                reports[first].name, r.name
            ));
        } else {
            a.label = Some(i);
        }
    }
    let volume = |i: usize| reports[i].volume.as_ref().expect("readable");
    if let Some(&(i, _)) = images.iter().find(|(i, _)| volume(*i).channels > 1) {
        let vol = volume(i);
        if vol.channels != n || images.len() > 1 {
            return Err(format!(
                "{} holds {} volumes; a 4-D file must hold the model's {n} channels ({}) and be the study's only image",
                reports[i].name,
                vol.channels,
                channels.join(", ")
            ));
        }
        a.all = Some(i);
        return Ok(a);
    }
    let mut rest = Vec::new();
    for (i, choice) in images {
        let name = &reports[i].name;
        let c = match choice {
            Some(role) => Some(
                named_channel(role, channels)
                    .ok_or_else(|| format!("--role {name}={role}: the model's channels are {}", channels.join(", ")))?,
            ),
            None => channel_of(name, channels),
        };
        match c {
            Some(c) if a.channels[c].is_some() => {
                return Err(format!(
                    "both {} and {name} are {}; say which is which with --role FILE=CHANNEL",
                    reports[a.channels[c].expect("checked")].name,
                    channels[c]
                ))
            }
            Some(c) => a.channels[c] = Some(i),
            None => rest.push(i),
        }
    }
    // DICOM series whose descriptions name no channel (localizers, extra sequences of the
    // exam) stay unused when there are more of them than free channels: the user says which.
    let is_dicom = |i: usize| reports[i].info.as_ref().is_some_and(|f| f.format == "DICOM");
    let free = a.channels.iter().filter(|c| c.is_none()).count();
    if rest.iter().filter(|i| is_dicom(**i)).count() > free {
        rest.retain(|i| !is_dicom(*i));
    }
    for i in rest {
        match a.channels.iter().position(Option::is_none) {
            Some(c) => a.channels[c] = Some(i),
            None => return Err(format!("{}: the model's {n} channels already have their files", reports[i].name)),
        }
    }
    Ok(a)
}

/// A study for a model whose card names its channels (`channels`) and classes (`classes`), the
/// files assigned as [`assign_channels`] says. Channels on other grids are resampled onto the
/// grid of the channel named `grid`, or ("") the finest; a label holds class indices.
pub fn assemble_channels(
    reports: &[FileReport],
    channels: &[String],
    classes: usize,
    chosen: &[(String, String)],
    grid: &str,
) -> Result<Study, String> {
    let errors = blocking_errors(reports);
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let a = assign_channels(reports, channels, chosen)?.with_grid(grid, channels)?;
    assemble_assigned(reports, &a, channels, classes)
}

/// The finest grid among `files` (the smallest voxel; the first on a tie): no detail of any
/// sequence is lost when the others are resampled onto it.
fn finest<'a>(files: &[(&'a str, &'a Volume)]) -> (&'a str, &'a Volume) {
    files
        .iter()
        .min_by(|a, b| Grid::of(a.1).voxel_volume().total_cmp(&Grid::of(b.1).voxel_volume()))
        .copied()
        .expect("a study has a channel")
}

/// The channels of `files`, one after the other, on `reference`'s grid: a file on another grid
/// is resampled (trilinear, in world coordinates) and noted in the returned list.
fn on_one_grid(files: &[(&str, &Volume)], reference: (&str, &Volume)) -> Result<(Vec<f32>, Vec<String>), String> {
    let mut resampled = Vec::new();
    let mut data = Vec::with_capacity(files.len() * reference.1.voxels());
    for (name, vol) in files {
        if same_grid(reference, (name, vol)).is_ok() {
            data.extend_from_slice(&vol.data);
            continue;
        }
        let moved = resample(vol, &Grid::of(reference.1), Interpolation::Linear).map_err(|e| format!("{name}: {e}"))?;
        resampled.push(moved_note(name, vol, reference));
        data.extend(moved.data);
    }
    Ok((data, resampled))
}

/// The study of files assigned by [`assign_channels`] (unreadable files are not part of it).
pub fn assemble_assigned(
    reports: &[FileReport],
    a: &Assignment,
    channels: &[String],
    classes: usize,
) -> Result<Study, String> {
    let n = channels.len();
    let part = |i: usize| (reports[i].name.as_str(), reports[i].volume.as_ref().expect("assigned files are read"));
    let label = a.label.map(part);
    let counts = |i: usize| reports[i].info.as_ref().map(|f| f.non_finite_by_volume.clone()).unwrap_or_default();
    if let Some(i) = a.all {
        let (name, vol) = part(i);
        let mut non_finite = counts(i);
        non_finite.resize(n, 0);
        let study = Study {
            volume: vol.clone(),
            label: None,
            sources: vec![name.to_string(); n],
            non_finite,
            resampled: Vec::new(),
        };
        return with_label(study, label, classes);
    }
    let missing: Vec<&str> = (0..n).filter(|&c| a.channels[c].is_none()).map(|c| channels[c].as_str()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the study is incomplete: no file for {} (the model reads {})",
            missing.join(", "),
            channels.join(", ")
        ));
    }
    let files: Vec<(&str, &Volume)> = a.channels.iter().map(|i| part(i.expect("checked"))).collect();
    let non_finite = a.channels.iter().map(|i| counts(i.expect("checked")).first().copied().unwrap_or(0)).collect();
    // Sequences on other grids are resampled onto the grid the user chose, else the finest.
    let reference = a.grid.map_or_else(|| finest(&files), |c| files[c]);
    let (data, resampled) = on_one_grid(&files, reference)?;
    let volume = Volume { channels: n, data, ..reference.1.clone() };
    let sources = files.iter().map(|(f, _)| f.to_string()).collect();
    with_label(Study { volume, label: None, sources, non_finite, resampled }, label, classes)
}

/// "NAME (dims, voxel size, orientation) resampled onto the grid of REFERENCE (…)".
fn moved_note(name: &str, vol: &Volume, (reference, onto): (&str, &Volume)) -> String {
    let grid = |v: &Volume| {
        let s = v.affine.voxel_size();
        format!(
            "{}×{}×{}, {:.2}×{:.2}×{:.2} mm, {}",
            v.dims[0],
            v.dims[1],
            v.dims[2],
            s[0],
            s[1],
            s[2],
            v.affine.orientation()
        )
    };
    format!("{name} ({}) resampled onto the grid of {reference} ({})", grid(vol), grid(onto))
}

fn with_label(mut study: Study, label: Option<(&str, &Volume)>, classes: usize) -> Result<Study, String> {
    if let Some((name, vol)) = label {
        // A label on another grid takes the nearest voxel: class indices are not blended.
        let moved;
        let vol = if same_grid(("the study", &study.volume), (name, vol)).is_ok() {
            vol
        } else {
            moved =
                resample(vol, &Grid::of(&study.volume), Interpolation::Nearest).map_err(|e| format!("{name}: {e}"))?;
            study.resampled.push(moved_note(name, vol, ("the study", &study.volume)));
            &moved
        };
        if let Some(v) = vol.data.iter().find(|v| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < classes)) {
            return Err(format!("{name} cannot be the label: it holds {v}, not a class index 0 to {}", classes - 1));
        }
        study.label = Some(vol.data.iter().map(|v| *v as u8).collect());
    }
    Ok(study)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_names_are_recognised() {
        let cases = [
            ("t2.nii.gz", Role::Sequence(0)),
            ("T2w_HASTE.nii", Role::Sequence(0)),
            ("t1_plain.nii.gz", Role::Sequence(1)),
            ("T1 native.nii", Role::Sequence(1)),
            ("t1_20s.nii.gz", Role::Sequence(2)),
            ("T1 20 s.nii", Role::Sequence(2)),
            ("patient3_arterial.hdr", Role::Sequence(2)),
            ("t1_60s.nii.gz", Role::Sequence(3)),
            ("t1-portal-venous.nii", Role::Sequence(3)),
            ("t1_120s.nii.gz", Role::Sequence(4)),
            ("T1_120sec.nii", Role::Sequence(4)),
            ("t1_15min.nii.gz", Role::Sequence(5)),
            ("T1 15 min HBP.nii.gz", Role::Sequence(5)),
            ("label.nii.gz", Role::Label),
            ("tumour_mask.nii", Role::Label),
            ("notes.nii", Role::Unused),
        ];
        for (name, want) in cases {
            assert_eq!(Role::guess(name, 1), want, "{name}");
        }
        assert_eq!(Role::guess("t2.nii", 6), Role::AllSequences);
        let brats: Vec<String> = ["T1", "T1ce", "T2", "FLAIR"].map(String::from).to_vec();
        assert_eq!(channel_of("BraTS_001_t1ce.nii.gz", &brats), Some(1));
        assert_eq!(channel_of("BraTS_001_flair.nii.gz", &brats), Some(3));
        assert_eq!(channel_of("case_0002.nii.gz", &brats), Some(2));
        assert_eq!(channel_of("case_0007.nii.gz", &brats), None);
        assert_eq!(channel_of("scan.nii", &brats), None);
    }

    #[test]
    fn studies_follow_the_model_card() {
        let vol = |channels: usize, fill: f32| Volume {
            dims: [2, 2, 2],
            channels,
            spacing: [1.0; 3],
            affine: crate::io::geometry::Affine::diagonal([1.0; 3]),
            data: vec![fill; 8 * channels],
        };
        let file = |name: &str, v: Volume| FileReport {
            name: name.into(),
            role: Role::Unused,
            info: None,
            error: None,
            aside: false,
            volume: Some(v),
        };
        let names: Vec<String> = ["T2", "ADC", "DWI"].map(String::from).to_vec();
        // By name, whatever the order; the label (classes 0..3) wherever it comes.
        let files = [file("p_dwi.nii", vol(1, 3.0)), file("label.nii", vol(1, 2.0)), file("p_t2.nii", vol(1, 1.0))];
        let all = [files[0].clone(), files[1].clone(), files[2].clone(), file("scan.nii", vol(1, 2.5))];
        let study = assemble_channels(&all, &names, 3, &[], "").unwrap();
        assert_eq!(study.sources, ["p_t2.nii", "scan.nii", "p_dwi.nii"]);
        assert_eq!(&study.volume.data[..9], &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.5]);
        assert_eq!(study.label.as_deref(), Some(&[2u8; 8][..]));
        // A missing channel is named; a label value outside the classes is refused.
        let err = assemble_channels(&files, &names, 3, &[], "").unwrap_err();
        assert!(err.contains("no file for ADC"), "{err}");
        let err = assemble_channels(&all, &names, 2, &[], "").unwrap_err();
        assert!(err.contains("holds 2, not a class index 0 to 1"), "{err}");
        // One 4-D file with every channel, the label after it; --role renames.
        let four = [file("study.nii", vol(3, 1.0)), file("seg.nii", vol(1, 1.0))];
        assert_eq!(assemble_channels(&four, &names, 2, &[], "").unwrap().volume.channels, 3);
        let chosen = [("seg.nii".to_string(), "unused".to_string())];
        assert!(assemble_channels(&four, &names, 2, &chosen, "").unwrap().label.is_none());
        let err = assemble_channels(&[four[0].clone(), files[0].clone()], &names, 2, &[], "").unwrap_err();
        assert!(err.contains("only image"), "{err}");
        // The file list's roles, also while the study is incomplete.
        let a = assign_channels(&four, &names, &[]).unwrap();
        assert_eq!(a.roles(2, &names), [ALL_CHANNELS, "label"]);
        let a = assign_channels(&files[..1], &names, &[]).unwrap();
        assert_eq!(a.roles(1, &names), [names[2].as_str()]);
        assert!(assemble_assigned(&files[..1], &a, &names, 2).unwrap_err().contains("incomplete"));
        for r in [Role::Sequence(3), Role::AllSequences, Role::Label, Role::Unused] {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
    }

    #[test]
    fn sequences_on_other_grids_are_resampled_onto_the_finest() {
        use crate::io::geometry::Affine;
        let file = |name: &str, dims: [usize; 3], affine: Affine, f: &dyn Fn(usize, usize, usize) -> f32| {
            let mut data = Vec::new();
            for z in 0..dims[2] {
                for y in 0..dims[1] {
                    for x in 0..dims[0] {
                        data.push(f(x, y, z));
                    }
                }
            }
            let spacing = affine.voxel_size().map(|v| v as f32);
            FileReport {
                name: name.into(),
                role: Role::Unused,
                info: None,
                error: None,
                aside: false,
                volume: Some(Volume { dims, channels: 1, spacing, affine, data }),
            }
        };
        // T2 at 1 mm; ADC at 2 mm over the same field of view (voxel centres half a fine voxel
        // in), its values linear in x; a label at 2 mm.
        let fine = Affine::diagonal([1.0; 3]);
        let coarse = Affine([[2.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.5], [0.0, 0.0, 2.0, 0.5]]);
        let files = [
            file("adc.nii", [4, 4, 4], coarse, &|x, _, _| 10.0 * x as f32),
            file("t2.nii", [8, 8, 8], fine, &|x, y, z| (x + y + z) as f32),
            file("label.nii", [4, 4, 4], coarse, &|x, _, _| u8::from(x >= 2) as f32),
        ];
        let names: Vec<String> = ["T2", "ADC"].map(String::from).to_vec();
        let study = assemble_channels(&files, &names, 2, &[], "").unwrap();
        assert_eq!((study.volume.dims, study.volume.affine), ([8, 8, 8], fine));
        assert_eq!(study.resampled.len(), 2, "{:?}", study.resampled);
        assert!(study.resampled[0].starts_with("adc.nii (4×4×4, 2.00×2.00×2.00 mm, RAS)"), "{:?}", study.resampled);
        // Fine voxel x lies at coarse (x − 0.5) / 2: ADC = 10 · (x − 0.5) / 2 inside, 0 beyond.
        let adc = study.volume.channel(1);
        for x in 0..8 {
            let expected = if (1..=6).contains(&x) { 5.0 * (x as f32 - 0.5) } else { 0.0 };
            assert!((adc[study.volume.index([x, 3, 3])] - expected).abs() < 1e-5, "x = {x}");
        }
        assert_eq!(study.volume.channel(0)[study.volume.index([1, 2, 3])], 6.0);
        let label = study.label.as_ref().unwrap();
        let row: Vec<u8> = (0..8).map(|x| label[study.volume.index([x, 3, 3])]).collect();
        assert_eq!(row, [0, 0, 0, 0, 1, 1, 1, 0]);
        // On ADC's grid instead: T2 moves (trilinear is exact for its linear values: coarse voxel
        // x lies at fine 2x + 0.5), ADC and the label stay as they are.
        let study = assemble_channels(&files, &names, 2, &[], "adc").unwrap();
        assert_eq!((study.volume.dims, study.volume.affine), ([4, 4, 4], coarse));
        assert_eq!(study.resampled.len(), 1, "{:?}", study.resampled);
        assert!(study.resampled[0].starts_with("t2.nii (8×8×8, 1.00×1.00×1.00 mm"), "{:?}", study.resampled);
        let t2 = study.volume.channel(0);
        for (x, y, z) in [(0, 0, 0), (1, 2, 3), (3, 3, 3)] {
            let expected = 2.0 * (x + y + z) as f32 + 1.5;
            assert!((t2[study.volume.index([x, y, z])] - expected).abs() < 1e-4, "({x}, {y}, {z})");
        }
        assert_eq!(study.volume.channel(1)[study.volume.index([3, 1, 2])], 30.0);
        assert_eq!(study.label.as_ref().unwrap()[study.volume.index([2, 0, 0])], 1);
        let err = assemble_channels(&files, &names, 2, &[], "DWI").unwrap_err();
        assert!(err.contains("--grid DWI") && err.contains("T2, ADC"), "{err}");

        // The liver model's six sequences and its label, two of them at 2 mm: the same result
        // (each sequence moved as above, the 0/1 label by the nearest voxel).
        let liver = [
            file("t2.nii", [8, 8, 8], fine, &|x, y, z| (x + y + z) as f32),
            file("t1_plain.nii", [4, 4, 4], coarse, &|x, _, _| 10.0 * x as f32),
            file("t1_20s.nii", [8, 8, 8], fine, &|x, _, _| x as f32),
            file("t1_60s.nii", [8, 8, 8], fine, &|_, y, _| y as f32),
            file("t1_120s.nii", [8, 8, 8], fine, &|_, _, z| z as f32 + 1.0),
            file("t1_15min.nii", [8, 8, 8], fine, &|x, y, _| (x * y) as f32),
            file("label.nii", [4, 4, 4], coarse, &|x, _, _| u8::from(x >= 2) as f32),
        ];
        let parts: Vec<(&str, &Volume, Role)> =
            liver.iter().map(|f| (f.name.as_str(), f.volume.as_ref().unwrap(), Role::guess(&f.name, 1))).collect();
        let study = assemble(&parts).unwrap();
        assert_eq!((study.volume.dims, study.volume.channels, study.volume.affine), ([8, 8, 8], 6, fine));
        assert_eq!(study.resampled.len(), 2, "{:?}", study.resampled);
        assert!(study.resampled[0].starts_with("t1_plain.nii (4×4×4"), "{:?}", study.resampled);
        let moved = study.volume.channel(1);
        for x in 0..8 {
            let expected = if (1..=6).contains(&x) { 5.0 * (x as f32 - 0.5) } else { 0.0 };
            assert!((moved[study.volume.index([x, 3, 3])] - expected).abs() < 1e-5, "x = {x}");
        }
        let label = study.label.as_ref().unwrap();
        assert_eq!((0..8).map(|x| label[study.volume.index([x, 3, 3])]).collect::<Vec<u8>>(), row);
    }
}
