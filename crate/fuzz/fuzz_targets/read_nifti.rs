//! Any bytes into the NIfTI reader, as a single file and as a `.hdr`/`.img` pair: it must
//! return a value or a typed error, never panic, hang or allocate beyond the input's promise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seglrp::nifti::{read_nifti, read_nifti_pair, ReadError};

fuzz_target!(|data: &[u8]| {
    check(read_nifti(data), data);
    if data.len() > 348 {
        // Header and image split where a pair's header ends.
        let cut = if data[0] == 0x5c || data[3] == 0x5c { 348 } else { 540.min(data.len()) };
        check(read_nifti_pair(&data[..cut], &data[cut..]), data);
    }
});

fn check(result: Result<seglrp::nifti::Nifti, ReadError>, data: &[u8]) {
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
