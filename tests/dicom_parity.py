"""DICOM series as `seglrp` reads them, against nibabel's reading of the same files.

Real DICOM files that ship in registry packages (pydicom's and nibabel's test data, unpacked by
scripts/lib.sh into $SEGLRP_TESTDATA): a five-slice CT series, one MR slice in five transfer
syntaxes (explicit and implicit little endian, big endian, RLE, lossless JPEG 2000), and a
Philips enhanced multi-frame MPRAGE of 176 frames (geometry only: its pixels are blank).

For each series `seglrp info --json --values` prints the volume's affine and writes its values;
nibabel's DICOM wrappers (over pydicom) give each file's pixels and their voxel-to-patient
affine. Every pixel nibabel reads must land, through seglrp's affine, on a whole voxel of the
volume (≤ 1e-3 voxel), hold the same value, and every voxel must be hit once. Series that cannot
be one volume must be refused in words; a .zip of the series reads as the folder; a study made of
a DICOM series segments and explains as the same study written to NIfTI by nibabel.

Run: SEGLRP_BIN=… SEGLRP_TESTDATA=… python tests/dicom_parity.py
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom

warnings.simplefilter("ignore")  # nibabel's notes on its DICOM readers and Philips private tags
from nibabel.nicom import dicomwrappers  # noqa: E402

BIN = os.environ.get("SEGLRP_BIN", "target/release/seglrp")
DATA = Path(os.environ.get("SEGLRP_TESTDATA", Path.home() / ".cache/seglrp/testdata"))
PYD = DATA / "pydicom/data/test_files"
NIB = DATA / "nibabel/nicom/tests/data"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def seglrp(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def read_series(paths, out):
    """seglrp's series: {name: (info, values)}, and the run (for its messages)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    run = seglrp("info", *paths, "--json", "--values", out)
    series = {}
    if run.stdout.strip():
        for entry in json.loads(run.stdout):
            if "info" in entry:
                name = Path(entry["file"]).name
                values = np.fromfile(Path(out) / f"{name}.f32", dtype="<f4")
                series[entry["file"]] = (entry["info"], values)
    return series, run


def nibabel_images(paths):
    """(pixels, voxel → RAS affine) per file, as nibabel reads them."""
    out = []
    for p in paths:
        p = Path(p)
        src = gzip.open(p) if p.suffix == ".gz" else p
        w = dicomwrappers.wrapper_from_data(pydicom.dcmread(src))
        data = np.asarray(w.get_data(), dtype=np.float64)
        out.append((data, LPS_TO_RAS @ np.asarray(w.affine, dtype=np.float64)))
    return out


def compare(label, info, values, reference, within=1e-3):
    """Every reference pixel at a whole voxel of seglrp's volume, with its value; all voxels hit."""
    dims = info["dims"][:3]
    vol = values.reshape(dims[::-1]).transpose(2, 1, 0)  # file order x fastest → [x, y, z]
    ours = np.asarray(info["affine"], dtype=np.float64)
    ours = np.vstack([ours[:3], [0, 0, 0, 1]])
    to_ours = np.linalg.inv(ours)
    hit = np.zeros(dims, dtype=np.int32)
    worst_pos = worst_val = 0.0
    for data, affine in reference:
        data = data.reshape(data.shape + (1,) * (3 - data.ndim))
        idx = np.indices(data.shape).reshape(3, -1)
        ijk = (to_ours @ affine @ np.vstack([idx, np.ones(idx.shape[1])]))[:3]
        near = np.rint(ijk)
        worst_pos = max(worst_pos, float(np.abs(ijk - near).max()))
        near = near.astype(int)
        inside = np.all((near >= 0) & (near < np.array(dims)[:, None]), axis=0)
        if not inside.all():
            check(False, f"{label}: {int((~inside).sum())} pixels fall outside the volume")
            return
        mine = vol[near[0], near[1], near[2]]
        theirs = data.reshape(-1)
        worst_val = max(worst_val, float(np.abs(mine - theirs).max() / max(1.0, np.abs(theirs).max())))
        np.add.at(hit, (near[0], near[1], near[2]), 1)
    check(worst_pos < within, f"{label}: pixels land on voxel centres (worst {worst_pos:.2e} voxel)")
    check(worst_val < 1e-6, f"{label}: values as nibabel reads them (worst {worst_val:.1e} of the range)")
    check(hit.min() == 1 and hit.max() == 1, f"{label}: each of {hit.size} voxels holds one pixel")


def refused(label, paths, words, tmp):
    series, run = read_series(paths, tmp / "refused")
    said = run.stderr.lower()
    check(
        not series and run.returncode != 0 and all(w in said for w in words),
        f"{label}: refused in words ({run.stderr.strip().splitlines()[-1] if run.stderr.strip() else 'nothing said'})",
    )


def main():
    tmp = Path(tempfile.mkdtemp(prefix="seglrp-dicom-"))
    try:
        # A CT series of five slices, the files in descending position order.
        ct_dir = PYD / "dicomdirtests/98892001/CT5N"
        ct_files = sorted(ct_dir.iterdir())
        series, run = read_series([ct_dir], tmp / "ct")
        check(len(series) == 1, f"CT5N folder: one series ({list(series)}; {run.stderr.strip()})")
        for name, (info, values) in series.items():
            check(info["dims"] == [16, 16, 5], f"CT5N: {name} is 16×16×5 ({info['dims']})")
            check(info["format"] == "DICOM", "CT5N: format DICOM")
            compare("CT5N", info, values, nibabel_images(ct_files))
            ct = (info, values)
        # The same files in a .zip, and given one by one.
        archive = tmp / "ct5n.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for f in ct_files:
                z.write(f, f"CT5N/{f.name}")
        for label, paths in [("CT5N .zip", [archive]), ("CT5N files", ct_files[::-1])]:
            again, _ = read_series(paths, tmp / "again")
            same = len(again) == 1 and all(
                np.array_equal(v, ct[1]) and i["affine"] == ct[0]["affine"] for i, v in again.values()
            )
            check(same, f"{label}: the folder's volume and affine")

        # One MR slice in five transfer syntaxes: the lossless ones decode to the same pixels.
        reference = nibabel_images([PYD / "MR_small.dcm"])
        for f in ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
                  "MR_small_jp2klossless.dcm"]:
            series, run = read_series([PYD / f], tmp / "mr")
            check(len(series) == 1, f"{f}: one series ({run.stderr.strip()[-200:]})")
            for info, values in series.values():
                compare(f, info, values, reference)

        # CT in Hounsfield units (the modality LUT applied).
        series, _ = read_series([PYD / "CT_small.dcm"], tmp / "cts")
        for info, values in series.values():
            compare("CT_small.dcm", info, values, nibabel_images([PYD / "CT_small.dcm"]))
            check(values.min() < 0, f"CT_small.dcm: rescaled to HU (min {values.min()})")

        # An enhanced multi-frame MR (Philips, 176 frames): positions per frame. The copy nibabel
        # ships has blank pixels (all 0): this case checks geometry and frame order only.
        mprage = NIB / "philips_mprage.dcm.gz"
        series, run = read_series([mprage], tmp / "mprage")
        check(len(series) == 1, f"philips_mprage: one series ({run.stderr.strip()[-200:]})")
        for info, values in series.values():
            check(info["dims"] == [256, 256, 176], f"philips_mprage: 256×256×176 ({info['dims']})")
            # nibabel steps from frame to frame by the nominal slice spacing, seglrp (as dcm2niix)
            # by the frames' own positions, which drift 7.6e-6 mm a slice from it: 1.3e-3 mm at
            # the last of 176 slices.
            compare("philips_mprage", info, values, nibabel_images([mprage]), within=2e-3)

        # What cannot be one volume, in words.
        tests = PYD / "dicomdirtests"
        refused("CT2 (one slice far from the others)", [tests / "77654033/CT2"], ["unevenly spaced"], tmp)
        refused("MR700 (projections in several planes)", [tests / "98892003/MR700"], ["different planes"], tmp)
        refused("a radiograph", [tests / "77654033/CR1"], ["no position in the patient"], tmp)
        refused("a colour image", [PYD / "SC_rgb_rle.dcm"], ["colour"], tmp)
        refused("a Siemens mosaic", [NIB / "0.dcm", NIB / "1.dcm"], ["mosaic", "dcm2niix"], tmp)
        refused("JPEG-LS (no pure-Rust decoder)", [PYD / "MR_small_jpeg_ls_lossless.dcm"], ["cannot be decoded"], tmp)
        refused("a DICOMDIR alone", [tests / "DICOMDIR"], ["dicomdir"], tmp)
        refused("an RT plan", [PYD / "rtplan.dcm"], ["without an image"], tmp)
        # A scanner's folder: the series that are volumes are read, the rest set aside (exit 0).
        series, run = read_series([tests / "98892001"], tmp / "patient")
        check(
            run.returncode == 0 and len(series) == 1 and "Scout" in run.stderr,
            f"a patient folder: the CT series read, the scout set aside ({list(series)}; {run.returncode})",
        )

        # A study from a DICOM series = the same study written to NIfTI from nibabel's reading.
        study_check(tmp, ct_dir, ct)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} DICOM checks failed")
        sys.exit(1)
    print("all DICOM checks passed")


def study_check(tmp, ct_dir, ct):
    """A one-channel CT model's explanation of the DICOM series = of nibabel's NIfTI of it."""
    import nibabel as nib

    sys.path.insert(0, str(Path(__file__).parent))
    from nnunet_folder import PLAIN, model_folder

    model, _, _ = model_folder(tmp / "ct-model", "PlainConvUNet", PLAIN[0], 1, PLAIN[1], 5)
    info, values = ct
    # The NIfTI from nibabel's pixels and affine (not seglrp's): stack the five slices along z.
    imgs = sorted(nibabel_images(sorted(ct_dir.iterdir())), key=lambda a: a[1][2, 3])
    # nibabel's arrays are [row, column]; the voxel axes seglrp gives a series are [column, row,
    # slice] (as dcm2niix's), and a network sees the voxel grid: the NIfTI takes that order.
    data = np.stack([d.reshape(d.shape[:2]).T for d, _ in imgs], axis=-1).astype(np.float32)
    affine = imgs[0][1][:, [1, 0, 2, 3]].copy()
    affine[:3, 2] = imgs[1][1][:3, 3] - imgs[0][1][:3, 3]
    nifti = tmp / "ct5n.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), nifti)
    results = []
    for study in [ct_dir, nifti]:
        run = seglrp("explain", study, "--model", model, "--voxel", "8,8,2", "--json", tmp / "x.json")
        if run.returncode != 0:
            check(False, f"explain {study.name}: {run.stderr.strip()[-300:]}")
            return
        results.append(json.loads((tmp / "x.json").read_text()))
    a, b = (r["explanation"] for r in results)
    check(a["shares"] is not None and a == b, f"explain: DICOM series = nibabel's NIfTI of it ({a} vs {b})")


if __name__ == "__main__":
    main()
