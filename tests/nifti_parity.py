"""SegLRP's NIfTI reader and writer against nibabel, the field's reference, on real files.

Run by `npm test` (scripts/test.sh) with the venv's Python:
    SEGLRP_BIN=target/release/seglrp SEGLRP_TESTDATA=~/.cache/seglrp/testdata python tests/nifti_parity.py

1. Every file shipped in nibabel's, nilearn's and dipy's wheels that nibabel reads as a NIfTI
   image, plus files nibabel writes here (.hdr/.img pairs of both versions, int8/int32/uint32/
   int64, scaling, NaN): `seglrp info --json --values` must give nibabel's dimensions, datatype,
   affine, orientation and values (max abs diff <= 1e-6 x max|value|).
2. Files nibabel writes that SegLRP must refuse (complex, 5-D) are refused with a reason.
3. Exports: `seglrp explain --relevance --segmentation` on an oblique six-file study give NIfTI
   that nibabel reads back with the study's affine and the engine's values.
4. Resampling between grids (`seglrp resample`) against scipy's `map_coordinates` through the
   files' affines (nibabel): real files of different grids (nibabel's anatomical and 4-D
   functional scans), an oblique grid, and a label from nilearn's MNI template moved nearest.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

BIN = os.environ["SEGLRP_BIN"]
DATA = Path(os.environ["SEGLRP_TESTDATA"])

SHIPPED = [
    "nibabel/tests/data/anatomical.nii",  # big-endian int16
    "nibabel/tests/data/functional.nii",  # 4-D
    "nibabel/tests/data/example4d.nii.gz",  # extensions
    "nibabel/tests/data/example_nifti2.nii.gz",  # NIfTI-2
    "nibabel/tests/data/standard.nii.gz",
    "nibabel/tests/data/reoriented_anat_moved.nii",  # big-endian float32
    "nibabel/tests/data/resampled_anat_moved.nii",
    "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "nilearn/datasets/data/image_10426.nii.gz",
    "dipy/data/files/S0_10slices.nii.gz",  # uint16, 4-D with one volume
    "dipy/data/files/aniso_vox.nii.gz",  # anisotropic, qform and sform
    "dipy/data/files/ascm_out_test.nii.gz",  # float64
    "dipy/data/files/test_piesno.nii.gz",
    "dipy/data/files/small_64D.nii",  # axes permuted (PLS)
    "dipy/data/files/small_101D.nii.gz",
    "dipy/data/files/small_25.nii.gz",
]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def seglrp(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def make_files(tmp: Path):
    """Files nibabel writes: the datatypes, layouts and header cases not in the shipped set."""
    anat = nib.load(DATA / "nibabel/tests/data/anatomical.nii")
    raw = np.asarray(anat.dataobj).astype(np.int64)
    made = []
    for dtype in ["int8", "int32", "uint32", "int64"]:
        data = raw - 100 if dtype in ("int8",) else raw * 1000 + (0 if dtype.startswith("u") else -5000)
        img = nib.Nifti1Image(data.astype(dtype), anat.affine, dtype=dtype)
        path = tmp / f"anat_{dtype}.nii.gz"
        nib.save(img, path)
        made.append(path)
    # .hdr/.img pairs, NIfTI-1 and -2; nibabel writes them big-endian only if asked.
    for cls, name in [(nib.Nifti1Pair, "pair1"), (nib.Nifti2Pair, "pair2")]:
        img = cls(raw.astype(np.int16), anat.affine, anat.header)
        nib.save(img, tmp / f"{name}.hdr")
        made.append((tmp / f"{name}.hdr", tmp / f"{name}.img"))
    # Scaling: the shipped anatomical bytes with slope 0.5 and intercept -3 patched in.
    b = bytearray((DATA / "nibabel/tests/data/anatomical.nii").read_bytes())
    b[112:116] = np.array(0.5, ">f4").tobytes()
    b[116:120] = np.array(-3.0, ">f4").tobytes()
    (tmp / "anat_scaled.nii").write_bytes(bytes(b))
    made.append(tmp / "anat_scaled.nii")
    # NaN and Inf voxels.
    f = raw.astype(np.float32)
    f[0, 0, 0], f[1, 0, 0], f[2, 0, 0] = np.nan, np.inf, -np.inf
    nib.save(nib.Nifti1Image(f, anat.affine), tmp / "anat_nan.nii")
    made.append(tmp / "anat_nan.nii")
    return made


def compare(path, result, values_dir):
    img = nib.load(path)
    name = Path(path).name
    if "error" in result:
        check(False, f"{name}: SegLRP refused a file nibabel reads: {result['error']}")
        return
    info = result["info"]
    shape = list(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    check(info["dims"] == shape, f"{name}: dims {info['dims']} vs nibabel {shape}")
    check(info["datatype"] == img.get_data_dtype().name, f"{name}: datatype {info['datatype']} vs {img.get_data_dtype().name}")
    check(info["format"] == ("NIfTI-2" if isinstance(img, (nib.Nifti2Image, nib.Nifti2Pair)) else "NIfTI-1"), f"{name}: format")
    h = img.header
    if int(h["sform_code"]) > 0 or int(h["qform_code"]) > 0:
        expected = img.affine  # nibabel: sform, else qform
    else:
        expected = np.diag([*np.abs(h.get_zooms()[:3]), 1.0])  # NIfTI method 1
    affine = np.array(info["affine"])
    check(np.abs(affine - expected).max() <= 1e-5, f"{name}: affine\n{affine}\nvs nibabel\n{expected}")
    check(info["orientation"] == "".join(nib.aff2axcodes(expected)), f"{name}: orientation {info['orientation']}")
    ref = np.asarray(img.get_fdata(dtype=np.float64)).reshape(-1, order="F")
    bad = ~np.isfinite(ref)
    ref[bad] = 0.0
    ours = np.fromfile(values_dir / f"{name}.f32", dtype="<f4").astype(np.float64)
    check(ours.shape == ref.shape, f"{name}: {ours.shape} values vs {ref.shape}")
    if ours.shape == ref.shape:
        scale = max(1.0, np.abs(ref).max())
        diff = np.abs(ours - ref).max()
        check(diff <= 1e-6 * scale, f"{name}: values differ by {diff} (max|v| {scale})")
        check(abs(result["sum"] - ref.sum()) <= 1e-6 * scale * ref.size, f"{name}: sum {result['sum']} vs {ref.sum()}")
        check(result["min"] == np.float32(ref.min()) and result["max"] == np.float32(ref.max()), f"{name}: min/max")
    check(info["non_finite"] == int(bad.sum()), f"{name}: {info['non_finite']} non-finite vs {bad.sum()}")
    print(f"ok  {name}: {info['format']} {info['datatype']} {'x'.join(map(str, info['dims']))} {info['orientation']}")


def test_reading(tmp: Path):
    files = [DATA / f for f in SHIPPED]
    for f in files:
        check(f.exists(), f"{f} is missing: run scripts/test.sh (it fetches the wheels)")
    made = make_files(tmp)
    args = []
    for m in made:
        args += list(m) if isinstance(m, tuple) else [m]
    values = tmp / "values"
    values.mkdir()
    out = seglrp("info", "--json", "--values", values, *files, *args)
    check(out.returncode == 0, f"seglrp info failed: {out.stderr}")
    results = {Path(r["file"]).name: r for r in json.loads(out.stdout)}
    for path in [*files, *[m[0] if isinstance(m, tuple) else m for m in made]]:
        compare(path, results[Path(path).name], values)


def test_refusals(tmp: Path):
    anat = nib.load(DATA / "nibabel/tests/data/anatomical.nii")
    cases = {
        "complex.nii": (nib.Nifti1Image(np.ones((3, 3, 3), np.complex64), anat.affine), "complex"),
        "five_d.nii": (nib.Nifti1Image(np.ones((3, 3, 3, 1, 2), np.float32), anat.affine), "5-D"),
    }
    for name, (img, words) in cases.items():
        nib.save(img, tmp / name)
        out = seglrp("info", tmp / name)
        check(out.returncode != 0 and words in out.stderr, f"{name}: expected a refusal naming '{words}', got {out.stderr!r}")
    out = seglrp("info", DATA / "nibabel/tests/data/nifti1.hdr")
    check(out.returncode != 0 and ".img" in out.stderr, f"a lone .hdr: {out.stderr!r}")
    # A gzip file whose CRC was damaged: Python's gzip (under nibabel) refuses it, and so must we.
    good = (DATA / "nibabel/tests/data/standard.nii.gz").read_bytes()
    bad = bytearray(good)
    bad[-8] ^= 0xFF
    (tmp / "bad_crc.nii.gz").write_bytes(bytes(bad))
    try:
        nib.load(tmp / "bad_crc.nii.gz").get_fdata()
        check(False, "nibabel read a damaged gzip file")
    except Exception:
        pass
    out = seglrp("info", "--json", tmp / "bad_crc.nii.gz")
    check(out.returncode != 0 and "checksum" in out.stderr, f"bad CRC: {out.stderr!r}")
    print("ok  refusals: complex, 5-D, .hdr without .img, damaged gzip CRC (reasons on stderr)")


def test_exports(tmp: Path):
    study = tmp / "study"
    check(seglrp("sample", "--dir", study).returncode == 0, "seglrp sample --dir")
    # Re-save the sequences with an oblique, shifted affine (exact in float32).
    c, s = 0.8, 0.6
    affine = np.array([[3 * c, -3 * s, 0, -91.5], [3 * s, 3 * c, 0, 12.25], [0, 0, 5, -40], [0, 0, 0, 1]])
    oblique = tmp / "oblique"
    oblique.mkdir()
    for f in sorted(study.glob("*.nii.gz")):
        img = nib.load(f)
        data = np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(data, affine, dtype=data.dtype), oblique / f.name)
    rel, seg, raw = tmp / "relevance.nii.gz", tmp / "segmentation.nii.gz", tmp / "relevance.f32"
    out = seglrp("explain", *sorted(oblique.glob("*.nii.gz")), "--voxel", "40,50,20", "--relevance", rel, "--segmentation", seg, "--raw", raw)
    check(out.returncode == 0, f"seglrp explain: {out.stderr}")
    summary = json.loads(out.stdout)
    study_affine = nib.load(oblique / "t2.nii.gz").affine
    r = nib.load(rel)
    check(r.shape == (128, 96, 40, 6) and r.get_data_dtype() == np.float32, f"relevance NIfTI: {r.shape} {r.get_data_dtype()}")
    check(np.array_equal(r.affine, study_affine), f"relevance affine {r.affine} vs {study_affine}")
    engine = np.fromfile(raw, dtype="<f4")
    check(np.array_equal(np.asarray(r.dataobj).reshape(-1, order="F"), engine), "relevance values differ from the engine's")
    g = nib.load(seg)
    check(g.get_data_dtype() == np.uint8 and g.shape == (128, 96, 40), f"segmentation NIfTI: {g.shape} {g.get_data_dtype()}")
    check(np.array_equal(g.affine, study_affine), "segmentation affine")
    gv = np.asarray(g.dataobj)
    check(set(np.unique(gv)) <= {0, 1} and int(gv.sum()) == summary["tumour_voxels"], "segmentation values")
    # The six files and the 4-D sample file give the same relevance.
    four_d = tmp / "sample.nii.gz"
    seglrp("sample", "--out", four_d)
    raw4 = tmp / "relevance4d.f32"
    out = seglrp("explain", four_d, "--voxel", "40,50,20", "--raw", raw4)
    check(out.returncode == 0 and np.array_equal(np.fromfile(raw4, "<f4"), engine), "six files vs one 4-D file")
    print(f"ok  exports: relevance {r.shape} float32 and segmentation uint8 with the study's oblique affine")


def rotation(degrees, axis):
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def expected_on(src_img, like_img, order):
    """scipy's interpolation of src's data at like's voxel centres (through both affines), and
    which of them lie inside src's extent."""
    from scipy.ndimage import map_coordinates

    data = np.asarray(src_img.get_fdata(), dtype=np.float64)
    if data.ndim == 3:
        data = data[..., None]
    shape = like_img.shape[:3]
    m = np.linalg.inv(src_img.affine) @ like_img.affine
    ijk = np.indices(shape).reshape(3, -1)
    coords = m[:3, :3] @ ijk + m[:3, 3:4]
    edge = 1e-4
    inside = np.all((coords >= -edge) & (coords <= np.array(data.shape[:3])[:, None] - 1 + edge), axis=0)
    frames = [
        map_coordinates(data[..., t], coords, order=order, mode="nearest").reshape(shape)
        for t in range(data.shape[3])
    ]
    return np.stack(frames, axis=-1), inside.reshape(shape), coords


def test_resampling(tmp: Path):
    anat = DATA / "nibabel/tests/data/anatomical.nii"
    func = DATA / "nibabel/tests/data/functional.nii"
    anat_img, func_img = nib.load(anat), nib.load(func)
    # An oblique grid over the same head: rotated 25° and 10°, 1.7 mm voxels.
    oblique_affine = rotation(25, 2) @ rotation(10, 0) @ np.diag([1.7, 1.7, 1.7, 1]) @ np.array(
        [[1, 0, 0, -40], [0, 1, 0, -50], [0, 0, 1, -20], [0, 0, 0, 1.0]]
    )
    oblique = tmp / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((48, 56, 40), np.float32), oblique_affine), oblique)
    cases = [(anat, func), (func, anat), (anat, oblique), (func, oblique)]
    for src, like in cases:
        out = tmp / f"{src.stem}-on-{like.name}"
        r = seglrp("resample", src, "--like", like, "--out", out)
        check(r.returncode == 0, f"resample {src.name} onto {like.name}: {r.stderr}")
        if r.returncode != 0:
            continue
        got_img = nib.load(out)
        like_img = nib.load(like)
        check(np.allclose(got_img.affine, like_img.affine, atol=1e-4), f"{out.name}: affine of {like.name}")
        got = np.asarray(got_img.get_fdata(), dtype=np.float64)
        if got.ndim == 3:
            got = got[..., None]
        expected, inside, _ = expected_on(nib.load(src), like_img, order=1)
        scale = np.abs(expected).max()
        diff = np.abs(got - expected)[inside].max() if inside.any() else np.inf
        outside = np.abs(got[~inside]).max() if (~inside).any() else 0.0
        check(inside.sum() > 1000, f"{out.name}: {inside.sum()} voxels inside the source")
        check(diff <= 1e-4 * scale, f"{out.name}: max|Δ| {diff:.3g} of {scale:.3g} against scipy")
        check(outside == 0.0, f"{out.name}: {outside} outside the source's extent (expected 0)")
        print(f"ok  resample {src.name} {nib.load(src).shape} -> {like.name} grid: max|Δ| {diff:.2e} of {scale:.3g}, "
              f"{inside.sum()} voxels inside")
    # A label (nilearn's MNI grey-matter map thresholded into classes 0-2) onto an oblique
    # 2.5 mm grid, nearest: exactly scipy's order-0 values wherever no coordinate is a tie.
    mni = nib.load(DATA / "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    gm = np.asarray(mni.get_fdata())
    label = (gm > 0.2).astype(np.uint8) + (gm > 0.6).astype(np.uint8)
    label_path = tmp / "label.nii.gz"
    nib.save(nib.Nifti1Image(label, mni.affine), label_path)
    grid = rotation(20, 1) @ np.diag([2.5, 2.5, 2.5, 1]) @ np.array(
        [[1, 0, 0, -36], [0, 1, 0, -48], [0, 0, 1, -30], [0, 0, 0, 1.0]]
    )
    grid_path = tmp / "grid.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((72, 88, 72), np.uint8), grid), grid_path)
    out = tmp / "label-on-grid.nii.gz"
    r = seglrp("resample", label_path, "--like", grid_path, "--out", out, "--nearest")
    check(r.returncode == 0, f"resample --nearest: {r.stderr}")
    if r.returncode == 0:
        got = np.asarray(nib.load(out).get_fdata())
        expected, inside, coords = expected_on(nib.load(label_path), nib.load(grid_path), order=0)
        frac = np.abs(coords - np.floor(coords) - 0.5).min(axis=0).reshape(inside.shape)
        fair = inside & (frac > 1e-3)
        wrong = int((got[fair] != expected[..., 0][fair]).sum())
        check(fair.sum() > 10000 and wrong == 0, f"label nearest: {wrong} of {fair.sum()} voxels differ from scipy")
        check(set(np.unique(got)) <= {0.0, 1.0, 2.0}, "label values stay class indices")
        print(f"ok  resample --nearest MNI label {label.shape} -> oblique 2.5 mm grid: {fair.sum()} voxels equal")


with tempfile.TemporaryDirectory() as d:
    tmp = Path(d)
    for test in (test_reading, test_refusals, test_exports, test_resampling):
        sub = tmp / test.__name__
        sub.mkdir()
        test(sub)

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("nibabel parity: all checks passed")
