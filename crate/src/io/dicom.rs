//! DICOM series as volumes, as dcm2niix and nibabel make them: the files of a drop (or a folder)
//! are parsed with dicom-rs (`dicom-object`; pixels decoded by `dicom-pixeldata`, modality LUT
//! applied, so CT is in HU), grouped by series, their slices — single-frame files, or the frames
//! of an enhanced multi-frame file — ordered along the slice normal, and the voxel-to-world
//! affine built from `ImagePositionPatient`, `ImageOrientationPatient` and `PixelSpacing`,
//! turned from DICOM's LPS into NIfTI's RAS. A series whose images share each position several
//! times (echoes, b-values, phases) is a 4-D volume, one volume per repetition.
//!
//! What cannot be one volume is refused in words, naming the series: images of several
//! orientations or sizes (a localizer), unevenly spaced or missing slices, colour images, images
//! without a position in the patient (radiographs, screen captures), Siemens mosaics.

use std::collections::BTreeMap;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemDicomObject;
use dicom_object::{OpenFileOptions, Tag};
use dicom_pixeldata::PixelDecoder;

use crate::io::geometry::{Affine, AffineSource};
use crate::io::nifti::{DataType, FileInfo, MAX_VALUES};
use crate::io::volume::Volume;

/// Whether a file is DICOM by its first bytes (the "DICM" magic after the 128-byte preamble)
/// or, for files written without the preamble, by its name.
pub fn is_dicom(name: &str, prefix: &[u8]) -> bool {
    prefix.get(128..132) == Some(b"DICM") || {
        let lower = name.to_ascii_lowercase();
        lower.ends_with(".dcm") || lower.ends_with(".dicom") || lower.ends_with(".ima")
    }
}

/// One series read from DICOM files.
#[derive(Clone, Debug)]
pub struct Series {
    /// How the series is listed and matched to channels: its description (or modality and
    /// number when it has none) and its number.
    pub name: String,
    pub description: String,
    pub number: Option<i64>,
    pub modality: String,
    pub uid: String,
    /// Files the series came from.
    pub files: usize,
    pub volume: Volume,
    pub info: FileInfo,
}

/// What became of a drop's DICOM files: the series that are volumes, the series that are not
/// (`(name, reason)`), and files that hold no image (`(file, what it is)`: a DICOMDIR, a
/// report), which a folder from a scanner often carries beside its series.
#[derive(Debug, Default)]
pub struct Read {
    pub series: Vec<Series>,
    pub refused: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
}

/// One 2-D image of a series: a single-frame file, or one frame of a multi-frame file.
struct Frame {
    file: String,
    rows: usize,
    cols: usize,
    /// Row then column direction cosines (LPS).
    orientation: [f64; 6],
    position: [f64; 3],
    /// Between rows, between columns (mm).
    spacing: [f64; 2],
    thickness: Option<f64>,
    /// Where the frame falls among repetitions at one position (instance number, or the frame's
    /// index in its file for a multi-frame image).
    order: (i64, i64),
    values: Vec<f32>,
    rescaled: bool,
    bits: u16,
    signed: bool,
}

struct SeriesHead {
    uid: String,
    description: String,
    number: Option<i64>,
    modality: String,
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.element_opt(tag).ok().flatten()?.to_str().ok()?.trim().trim_end_matches('\0').to_string();
    (!s.is_empty()).then_some(s)
}

fn numbers(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok().filter(|v| !v.is_empty())
}

fn integer(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

/// The first item of a sequence element.
fn item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(tag).ok().flatten()?.items()?.first()
}

/// A value of an enhanced multi-frame image's functional groups: the frame's own group first,
/// then the shared one (`group` is the functional-group macro, `tag` the value in it).
fn grouped(
    per_frame: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
    group: Tag,
    tag: Tag,
) -> Option<Vec<f64>> {
    [per_frame, shared].into_iter().flatten().find_map(|g| item(g, group).and_then(|i| numbers(i, tag)))
}

/// Parses one file into its series head and frames, or says why it holds no usable image.
fn parse(name: &str, bytes: &[u8]) -> Result<(SeriesHead, Vec<Frame>), Skip> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(bytes)
        .map_err(|e| Skip::NotDicom(format!("not a DICOM file this reader can parse ({e})")))?;
    let sop = obj.meta().media_storage_sop_class_uid.trim_end_matches('\0').to_string();
    let head = SeriesHead {
        uid: text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_else(|| format!("file {name}")),
        description: text(&obj, tags::SERIES_DESCRIPTION)
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        number: integer(&obj, tags::SERIES_NUMBER),
        modality: text(&obj, tags::MODALITY).unwrap_or_default(),
    };
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        let what = match sop.as_str() {
            "1.2.840.10008.1.3.10" => "a DICOMDIR (the folder's index)".to_string(),
            _ if head.modality.is_empty() => "a DICOM object without an image".to_string(),
            _ => format!("a DICOM {} object without an image", head.modality),
        };
        return Err(Skip::NoImage(what));
    }
    let refuse = |why: String| Err(Skip::Refused(head_name(&head), why));
    let samples = integer(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if samples != 1 {
        return refuse(format!(
            "{name} is a colour image ({samples} samples per pixel); only greyscale images are read"
        ));
    }
    if text(&obj, tags::IMAGE_TYPE).is_some_and(|t| t.to_ascii_uppercase().contains("MOSAIC")) {
        return refuse(format!(
            "{name} is a Siemens mosaic (all slices in one image); convert the series with dcm2niix first"
        ));
    }
    let frames = integer(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    let rows = integer(&obj, tags::ROWS).unwrap_or(0).max(0) as usize;
    let cols = integer(&obj, tags::COLUMNS).unwrap_or(0).max(0) as usize;
    if rows == 0 || cols == 0 {
        return refuse(format!("{name} gives no image size (Rows, Columns)"));
    }
    if (rows * cols * frames) as u64 > MAX_VALUES {
        return refuse(format!("{name} holds {rows}×{cols}×{frames} pixels, more than this reader accepts"));
    }
    let shared = item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame: Vec<&InMemDicomObject> = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| Skip::Refused(head_name(&head), format!("the pixels of {name} cannot be decoded ({e})")))?;
    let bits = decoded.bits_stored();
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let rescaled = decoded.rescale().map(|r| r.iter().any(|r| r.slope != 1.0 || r.intercept != 0.0)).unwrap_or(false);
    let instance = integer(&obj, tags::INSTANCE_NUMBER).unwrap_or(0);
    let mut out = Vec::with_capacity(frames);
    for f in 0..frames {
        let own = per_frame.get(f).copied();
        let orientation = grouped(own, shared, tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT)
            .or_else(|| numbers(&obj, tags::IMAGE_ORIENTATION_PATIENT));
        let position = grouped(own, shared, tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT)
            .or_else(|| (frames == 1).then(|| numbers(&obj, tags::IMAGE_POSITION_PATIENT)).flatten());
        let spacing = grouped(own, shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
            .or_else(|| numbers(&obj, tags::PIXEL_SPACING));
        let thickness = grouped(own, shared, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
            .or_else(|| numbers(&obj, tags::SPACING_BETWEEN_SLICES))
            .or_else(|| numbers(&obj, tags::SLICE_THICKNESS))
            .and_then(|v| v.first().copied())
            .filter(|t| t.is_finite() && *t > 0.0);
        let (Some(o), Some(p)) = (orientation, position) else {
            return refuse(format!(
                "{name} has no position in the patient (ImagePositionPatient, ImageOrientationPatient){}: \
                 not a cross-sectional image",
                if frames > 1 { " for each frame" } else { "" }
            ));
        };
        if o.len() != 6 || p.len() != 3 || o.iter().chain(&p).any(|v| !v.is_finite()) {
            return refuse(format!("{name}: ImagePositionPatient or ImageOrientationPatient is malformed"));
        }
        let spacing = match spacing.as_deref() {
            Some([r, c, ..]) if *r > 0.0 && *c > 0.0 && r.is_finite() && c.is_finite() => [*r, *c],
            _ => return refuse(format!("{name} gives no pixel spacing (PixelSpacing)")),
        };
        let values: Vec<f32> = decoded
            .to_vec_frame::<f32>(f as u32)
            .map_err(|e| Skip::Refused(head_name(&head), format!("the pixels of {name} cannot be read ({e})")))?;
        if values.len() != rows * cols {
            return refuse(format!("{name}: frame {} holds {} pixels, not {rows}×{cols}", f + 1, values.len()));
        }
        out.push(Frame {
            file: name.to_string(),
            rows,
            cols,
            orientation: o.try_into().expect("six values"),
            position: p.try_into().expect("three values"),
            spacing,
            thickness,
            order: if frames > 1 { (instance, f as i64) } else { (instance, 0) },
            values,
            rescaled,
            bits,
            signed,
        });
    }
    Ok((head, out))
}

enum Skip {
    NotDicom(String),
    NoImage(String),
    /// (series name, reason)
    Refused(String, String),
}

fn head_name(h: &SeriesHead) -> String {
    let what = if h.description.is_empty() {
        match h.modality.as_str() {
            "" => "DICOM".to_string(),
            m => m.to_string(),
        }
    } else {
        h.description.clone()
    };
    match h.number {
        Some(n) => format!("{what} (series {n})"),
        None => what,
    }
}

/// Reads DICOM files (`(name, bytes)`) into series. Files that are not DICOM, or hold no image,
/// are listed in [`Read::skipped`]; a series that cannot be one volume in [`Read::refused`].
pub fn read(files: &[(String, Vec<u8>)]) -> Read {
    let mut out = Read::default();
    // Series in the order of their numbers (as a viewer lists them), then of their UIDs.
    let mut groups: BTreeMap<(i64, String), (SeriesHead, Vec<Frame>, usize)> = BTreeMap::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for (name, bytes) in files {
        match parse(name, bytes) {
            Ok((head, frames)) => {
                let key = (head.number.unwrap_or(i64::MAX), head.uid.clone());
                let g = groups.entry(key).or_insert_with(|| (head, Vec::new(), 0));
                g.1.extend(frames);
                g.2 += 1;
            }
            Err(Skip::NotDicom(why) | Skip::NoImage(why)) => out.skipped.push((name.clone(), why)),
            Err(Skip::Refused(series, why)) => {
                refused.entry(series).or_insert(why);
            }
        }
    }
    let names: Vec<String> = groups.values().map(|(h, _, _)| head_name(h)).collect();
    for ((head, frames, files), name) in groups.into_values().zip(&names) {
        // Two series of one description and number (a repeated scan) are told apart by UID.
        let name = if names.iter().filter(|n| *n == name).count() > 1 {
            format!("{name} [{}]", head.uid.rsplit('.').next().unwrap_or(&head.uid))
        } else {
            name.clone()
        };
        if let Some(why) = refused.remove(&name) {
            out.refused.push((name, why));
            continue;
        }
        match stack(frames) {
            Ok((volume, info)) => out.series.push(Series {
                name,
                description: head.description,
                number: head.number,
                modality: head.modality,
                uid: head.uid,
                files,
                volume,
                info,
            }),
            Err(why) => out.refused.push((name, why)),
        }
    }
    out.refused.extend(refused);
    out
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Positions closer than this along the normal (mm) are one slice position.
const SAME_POSITION_MM: f64 = 1e-2;
/// Slice gaps may differ from their mean by this fraction (rounded positions) before the series
/// is refused as unevenly spaced: resampling it as if even would misplace slices.
const GAP_TOLERANCE: f64 = 0.05;

/// The frames of one series as one volume (4-D when each position repeats).
fn stack(mut frames: Vec<Frame>) -> Result<(Volume, FileInfo), String> {
    let first = &frames[0];
    let (rows, cols, o, spacing, thickness) =
        (first.rows, first.cols, first.orientation, first.spacing, first.thickness);
    if let Some(f) = frames.iter().find(|f| (f.rows, f.cols) != (rows, cols)) {
        return Err(format!(
            "its images have different sizes ({}×{} in {}, {}×{} in {}): not one volume",
            cols, rows, first.file, f.cols, f.rows, f.file
        ));
    }
    if let Some(f) = frames.iter().find(|f| f.orientation.iter().zip(&o).any(|(a, b)| (a - b).abs() > 1e-4)) {
        return Err(format!(
            "its images lie in different planes ({} and {}): a localizer or a reformat, not one volume",
            first.file, f.file
        ));
    }
    if let Some(f) = frames.iter().find(|f| f.spacing.iter().zip(&spacing).any(|(a, b)| (a - b).abs() > 1e-4 * b)) {
        return Err(format!(
            "its images have different pixel spacings ({} and {}): not one volume",
            first.file, f.file
        ));
    }
    let row_dir = [o[0], o[1], o[2]];
    let col_dir = [o[3], o[4], o[5]];
    let normal = cross(row_dir, col_dir);
    let along = |f: &Frame| dot(f.position, normal);
    frames.sort_by(|a, b| along(a).total_cmp(&along(b)).then(a.order.cmp(&b.order)));
    // Positions along the normal, each with its frames.
    let mut positions: Vec<Vec<usize>> = Vec::new();
    for i in 0..frames.len() {
        match positions.last_mut() {
            Some(p) if (along(&frames[i]) - along(&frames[p[0]])).abs() < SAME_POSITION_MM => p.push(i),
            _ => positions.push(vec![i]),
        }
    }
    let repeats = positions[0].len();
    if let Some(p) = positions.iter().find(|p| p.len() != repeats) {
        return Err(format!(
            "{} images at {} positions: {} at one position, {} at another (images missing?)",
            frames.len(),
            positions.len(),
            repeats,
            p.len()
        ));
    }
    let n = positions.len();
    let first_pos = frames[positions[0][0]].position;
    let step: [f64; 3] = if n > 1 {
        let last = frames[positions[n - 1][0]].position;
        let gaps: Vec<f64> = positions.windows(2).map(|w| along(&frames[w[1][0]]) - along(&frames[w[0][0]])).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let (lo, hi) = gaps.iter().fold((f64::MAX, f64::MIN), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
        if hi - lo > GAP_TOLERANCE * mean {
            return Err(format!(
                "its {n} slices are unevenly spaced (gaps from {lo:.3} to {hi:.3} mm): slices missing, or several \
                 stacks in one series"
            ));
        }
        std::array::from_fn(|a| (last[a] - first_pos[a]) / (n - 1) as f64)
    } else {
        let t = thickness.unwrap_or(1.0);
        normal.map(|v| v * t)
    };
    // LPS → RAS: the first two world axes change sign.
    let sign = [-1.0, -1.0, 1.0];
    let affine = Affine(std::array::from_fn(|r| {
        [
            sign[r] * row_dir[r] * spacing[1],
            sign[r] * col_dir[r] * spacing[0],
            sign[r] * step[r],
            sign[r] * first_pos[r],
        ]
    }));
    let dz = dot(step, step).sqrt();
    let dims = [cols, rows, n];
    let per = rows * cols * n;
    let mut data = Vec::with_capacity(per * repeats);
    for v in 0..repeats {
        for p in &positions {
            data.extend_from_slice(&frames[p[v]].values);
        }
    }
    let mut notes = Vec::new();
    if n > 1 && dot(step, normal).abs() < dz * (1.0 - 1e-4) {
        notes.push(format!(
            "slices are offset along their plane (gantry tilt of {:.1}°): the affine is sheared, as the images lie",
            (dot(step, normal) / dz).clamp(-1.0, 1.0).acos().to_degrees()
        ));
    }
    if repeats > 1 {
        notes.push(format!("{repeats} images at each of {n} positions: read as {repeats} volumes"));
    }
    let f = &frames[0];
    let datatype = match (f.rescaled, f.bits, f.signed) {
        (true, _, _) => DataType::Float32,
        (false, b, false) if b <= 8 => DataType::Uint8,
        (false, b, true) if b <= 8 => DataType::Int8,
        (false, b, false) if b <= 16 => DataType::Uint16,
        (false, b, true) if b <= 16 => DataType::Int16,
        (false, _, false) => DataType::Uint32,
        (false, _, true) => DataType::Int32,
    };
    let mut dims_info = dims.to_vec();
    if repeats > 1 {
        dims_info.push(repeats);
    }
    let info = FileInfo {
        format: "DICOM",
        pair: false,
        little_endian: true,
        datatype,
        dims: dims_info,
        spacing: [spacing[1] as f32, spacing[0] as f32, dz as f32],
        affine,
        affine_source: AffineSource::Dicom,
        orientation: affine.orientation(),
        scaling: None,
        non_finite: 0,
        non_finite_by_volume: vec![0; repeats],
        notes,
    };
    let volume =
        Volume { dims, channels: repeats, spacing: [spacing[1] as f32, spacing[0] as f32, dz as f32], affine, data };
    Ok((volume, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axial 2×3 frame at height `z` (LPS), its pixels all `value`.
    fn frame(z: f64, order: i64, value: f32) -> Frame {
        Frame {
            file: format!("f{order}"),
            rows: 3,
            cols: 2,
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            position: [10.0, 20.0, z],
            spacing: [0.5, 0.25],
            thickness: Some(2.0),
            order: (order, 0),
            values: vec![value; 6],
            rescaled: false,
            bits: 16,
            signed: true,
        }
    }

    #[test]
    fn slices_are_ordered_along_the_normal_and_the_affine_is_ras() {
        // Given out of order; 2 mm apart.
        let (vol, info) = stack(vec![frame(4.0, 3, 3.0), frame(0.0, 1, 1.0), frame(2.0, 2, 2.0)]).unwrap();
        assert_eq!((vol.dims, vol.channels), ([2, 3, 3], 1));
        assert_eq!(vol.data.iter().step_by(6).copied().collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
        // Columns 0.25 mm apart along x (L → R flips the sign), rows 0.5 mm along y (P → A).
        let a = Affine([[-0.25, 0.0, 0.0, -10.0], [0.0, -0.5, 0.0, -20.0], [0.0, 0.0, 2.0, 0.0]]);
        assert_eq!(vol.affine, a);
        assert_eq!((info.format, info.spacing, info.datatype), ("DICOM", [0.25, 0.5, 2.0], DataType::Int16));
    }

    #[test]
    fn repeated_positions_make_volumes_in_instance_order() {
        let frames = vec![frame(0.0, 3, 30.0), frame(2.0, 4, 40.0), frame(0.0, 1, 10.0), frame(2.0, 2, 20.0)];
        let (vol, info) = stack(frames).unwrap();
        assert_eq!((vol.dims[2], vol.channels, info.dims.clone()), (2, 2, vec![2, 3, 2, 2]));
        assert_eq!(vol.data.iter().step_by(6).copied().collect::<Vec<_>>(), [10.0, 20.0, 30.0, 40.0]);
        assert!(info.notes[0].contains("2 volumes"), "{:?}", info.notes);
    }

    #[test]
    fn what_is_not_one_volume_is_refused_in_words() {
        let err = stack(vec![frame(0.0, 1, 0.0), frame(2.0, 2, 0.0), frame(8.0, 3, 0.0)]).unwrap_err();
        assert!(err.contains("unevenly spaced"), "{err}");
        let err = stack(vec![frame(0.0, 1, 0.0), frame(2.0, 2, 0.0), frame(2.0, 3, 0.0)]).unwrap_err();
        assert!(err.contains("images missing"), "{err}");
        let mut tilted = frame(2.0, 2, 0.0);
        tilted.orientation = [1.0, 0.0, 0.0, 0.0, 0.8, 0.6];
        let err = stack(vec![frame(0.0, 1, 0.0), tilted]).unwrap_err();
        assert!(err.contains("different planes"), "{err}");
        let mut small = frame(2.0, 2, 0.0);
        small.rows = 2;
        assert!(stack(vec![frame(0.0, 1, 0.0), small]).unwrap_err().contains("different sizes"));
    }

    #[test]
    fn a_gantry_tilt_shears_the_affine_and_is_noted() {
        // Each slice 2 mm up and 0.5 mm along y: the positions, not the normal, place them.
        let mut frames: Vec<Frame> = (0..3).map(|i| frame(2.0 * i as f64, i, 0.0)).collect();
        for (i, f) in frames.iter_mut().enumerate() {
            f.position[1] += 0.5 * i as f64;
        }
        let (vol, info) = stack(frames).unwrap();
        assert_eq!([vol.affine.0[0][2], vol.affine.0[1][2], vol.affine.0[2][2]], [0.0, -0.5, 2.0]);
        assert!(info.notes[0].contains("gantry tilt of 14.0°"), "{:?}", info.notes);
    }

    #[test]
    fn files_that_are_not_dicom_or_hold_no_image_are_set_aside() {
        let read = read(&[("notes.dcm".to_string(), b"hello".to_vec())]);
        assert!(read.series.is_empty() && read.refused.is_empty());
        assert!(read.skipped[0].1.contains("not a DICOM file"), "{:?}", read.skipped);
        assert!(is_dicom("IM0001", &[&[0u8; 128][..], b"DICM"].concat()));
        assert!(!is_dicom("t2.nii", &[0u8; 132]));
    }
}
