//! Regions to explain: sets of output voxels picked from a segmentation, as masks in file order
//! (x fastest). The maps themselves are computed by `lrp::region`.

use std::collections::VecDeque;

/// The 6-connected component of `mask` (non-zero voxels) that contains `seed`, or `None` when
/// the seed voxel is not in the mask. `dims` = `[nx, ny, nz]`.
pub fn component(mask: &[u8], dims: [usize; 3], seed: [usize; 3]) -> Option<Vec<u8>> {
    let [nx, ny, nz] = dims;
    let index = |[x, y, z]: [usize; 3]| x + nx * (y + ny * z);
    if seed.iter().zip(&dims).any(|(s, d)| s >= d) || mask[index(seed)] == 0 {
        return None;
    }
    let mut out = vec![0u8; mask.len()];
    let mut queue = VecDeque::from([seed]);
    out[index(seed)] = 1;
    while let Some([x, y, z]) = queue.pop_front() {
        let neighbours = [
            (x > 0).then(|| [x - 1, y, z]),
            (x + 1 < nx).then(|| [x + 1, y, z]),
            (y > 0).then(|| [x, y - 1, z]),
            (y + 1 < ny).then(|| [x, y + 1, z]),
            (z > 0).then(|| [x, y, z - 1]),
            (z + 1 < nz).then(|| [x, y, z + 1]),
        ];
        for v in neighbours.into_iter().flatten() {
            let i = index(v);
            if mask[i] != 0 && out[i] == 0 {
                out[i] = 1;
                queue.push_back(v);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_fill_stays_in_its_component() {
        // Two blobs in a 4×3×2 grid, touching only diagonally.
        let dims = [4, 3, 2];
        let mut mask = vec![0u8; 24];
        for i in [0usize, 1, 4, 12] {
            mask[i] = 1; // (0,0,0) (1,0,0) (0,1,0) (0,0,1)
        }
        mask[5 + 4] = 1; // (1,2,0): diagonal to (0,1,0), not connected
        let c = component(&mask, dims, [1, 0, 0]).unwrap();
        assert_eq!(c.iter().filter(|v| **v == 1).count(), 4);
        assert_eq!(c[9], 0);
        assert_eq!(component(&mask, dims, [1, 2, 0]).unwrap().iter().filter(|v| **v == 1).count(), 1);
        assert!(component(&mask, dims, [3, 2, 1]).is_none());
        assert!(component(&mask, dims, [4, 0, 0]).is_none());
    }
}
