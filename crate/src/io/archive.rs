//! The files inside a `.zip`, for studies (DICOM exports, NIfTI files) and models (nnU-Net and
//! MONAI folders) alike: named by their paths in the archive with forward slashes, folders,
//! hidden files and macOS resource forks (`__MACOSX/`) passed over, paths that climb out of the
//! archive (`../`) not followed, and the bytes read capped.

use std::io::Read;

/// Most bytes read from the files of one `.zip` (what a page can hold, and more than five
/// folds of a 3d_fullres nnU-Net).
pub const MAX_BYTES: u64 = 4 << 30;

/// A name as a relative path with forward slashes.
pub fn clean(name: &str) -> String {
    let n = name.replace('\\', "/");
    n.trim_start_matches("./").trim_start_matches('/').to_string()
}

/// The files of the archive `bytes` whose path `keep` accepts, in archive order; at most
/// `max_bytes` in all. Errors say what is wrong with the archive in words.
pub fn unzip(bytes: &[u8], keep: impl Fn(&str) -> bool, max_bytes: u64) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a readable .zip ({e})"))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| format!("the .zip is damaged ({e})"))?;
        let Some(path) = f.enclosed_name() else { continue };
        let path = clean(&path.to_string_lossy());
        let hidden = path.split('/').any(|p| p.starts_with('.') || p == "__MACOSX");
        if f.is_dir() || hidden || !keep(&path) {
            continue;
        }
        total += f.size();
        if total > max_bytes {
            return Err(format!("its files hold more than {} GiB", max_bytes >> 30));
        }
        let mut b = Vec::with_capacity(f.size().min(1 << 30) as usize);
        f.read_to_end(&mut b).map_err(|e| format!("{path} in the .zip cannot be read ({e})"))?;
        out.push((path, b));
    }
    Ok(out)
}

/// A `.zip` of `entries` (name, bytes), for tests.
#[cfg(test)]
pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_files_climbing_paths_and_filtered_names_are_passed_over() {
        let z = zip_of(&[
            ("study/t2.nii", b"a"),
            ("study/.DS_Store", b"b"),
            ("__MACOSX/study/._t2.nii", b"c"),
            ("../outside.nii", b"d"),
            ("study/notes.txt", b"e"),
        ]);
        let files = unzip(&z, |p| p.ends_with(".nii"), MAX_BYTES).unwrap();
        assert_eq!(files, vec![("study/t2.nii".to_string(), b"a".to_vec())]);
        let e = unzip(&z, |_| true, 1).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        assert!(unzip(b"PK\x03\x04 not really", |_| true, MAX_BYTES).unwrap_err().starts_with("not a readable .zip"));
    }
}
