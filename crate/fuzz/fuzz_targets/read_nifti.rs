//! Any bytes into the NIfTI reader (header, gzip members and trailers, data), as a single file
//! and as a `.hdr`/`.img` pair, and into the page's header-first check: each must return a
//! value or a typed error, never panic, hang or allocate beyond the input's promise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seglrp::io::nifti::{check_header, read_nifti, read_nifti_pair, ImgFile, ReadError};

fuzz_target!(|data: &[u8]| {
    check(read_nifti(data), data);
    // The page's header-first check, for a file of the same and of a larger length.
    for len in [data.len() as u64, 1 << 32] {
        if let Err(e) = check_header(data, len, None) {
            assert!(!e.to_string().is_empty());
        }
        let _ = check_header(data, len, Some(ImgFile { gzip: len % 2 == 0 }));
    }
    if data.len() > 348 {
        // Header and image split where a pair's header ends.
        let cut = if data[0] == 0x5c || data[3] == 0x5c { 348 } else { 540.min(data.len()) };
        check(read_nifti_pair(&data[..cut], &data[cut..]), data);
    }
});

fn check(result: Result<seglrp::io::nifti::Nifti, ReadError>, data: &[u8]) {
    if let Ok(n) = result {
        let v = &n.volume;
        assert_eq!(v.data.len(), v.voxels() * v.channels);
        assert!(v.data.iter().all(|x| x.is_finite()), "non-finite voxel survived");
        // A valid file cannot describe more voxels than ~its bytes allow, unless compressed.
        if !(data.len() > 1 && data[0] == 0x1f && data[1] == 0x8b) {
            assert!(v.data.len() <= data.len());
        }
    } else if let Err(e) = result {
        assert!(!e.to_string().is_empty());
    }
}
