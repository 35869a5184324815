"""Random-weight nnU-Net networks saved as real trained-model folders (plans.json, dataset.json,
fold_0/checkpoint_final.pth with the entries nnU-Net's trainer writes), which nnU-Net's own
`nnUNetPredictor` loads. Used by tests/graph_parity.py and, from the command line, by the page's
end-to-end test:
    python tests/nnunet_folder.py OUT --channels 4 [--seed 3] [--zip]
prints the folder (or the .zip of its dataset folder, as nnUNetv2_export_model_to_zip writes one).
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
COMMON = dict(conv_op="torch.nn.modules.conv.Conv3d", conv_bias=True,
              norm_op="torch.nn.modules.instancenorm.InstanceNorm3d", norm_op_kwargs={"eps": 1e-5, "affine": True},
              dropout_op=None, dropout_op_kwargs=None, nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True})
CLASSES = {"background": 0, "liver": 1, "tumour": 2}
PLAIN = ("dynamic_network_architectures.architectures.unet.PlainConvUNet",
         dict(n_stages=3, features_per_stage=[4, 8, 16], kernel_sizes=[[3, 3, 3]] * 3,
              strides=[[1, 1, 1], [2, 2, 2], [1, 2, 2]], n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[2, 2],
              **COMMON))


def model_folder(root, label, cls, cin, kwargs, seed):
    """A random-weight network saved in nnU-Net's trained-model layout; returns (folder, net)."""
    torch.manual_seed(seed)
    net = get_network_from_plans(cls, kwargs, REQUIRES_IMPORT, cin, len(CLASSES), deep_supervision=False)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
    folder = root / f"Dataset00{seed}_Test" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    plans = {
        "dataset_name": f"Dataset00{seed}_Test", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.0, 1.0, 1.0], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [16, 32, 32], "median_image_size_in_voxels": [40, 64, 64], "spacing": [2.0, 1.0, 1.0],
            "normalization_schemes": ["CTNormalization"] + ["ZScoreNormalization"] * (cin - 1),
            "use_mask_for_norm": [False, True, False, True][:cin], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": {"network_class_name": cls, "arch_kwargs": kwargs, "_kw_requires_import": REQUIRES_IMPORT},
            "batch_dice": False}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(i): {"max": 900.0, "mean": 100.0 + i, "median": 90.0, "min": -50.0, "percentile_00_5": -20.0,
                     "percentile_99_5": 400.0, "std": 50.0} for i in range(cin)},
    }
    names = ["CT", "T1", "T1ce", "T2", "FLAIR"][:cin]
    dataset = {"channel_names": {str(i): n for i, n in enumerate(names)}, "labels": CLASSES, "numTraining": 4,
               "file_ending": ".nii.gz"}
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    # What nnU-Net's trainer saves: weights beside numpy scalars, a torch.device and the plans.
    torch.save({"network_weights": state, "optimizer_state": None, "grad_scaler_state": None,
                "logging": {"epoch_end_timestamps": [np.float64(1.5)], "mean_fg_dice": [np.float32(0.25)]},
                "_best_ema": np.float64(0.5), "current_epoch": 1,
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                              "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder, net, names


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--zip", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder, _, _ = model_folder(args.out, "PlainConvUNet", PLAIN[0], args.channels, PLAIN[1], args.seed)
    if args.zip:
        print(shutil.make_archive(str(args.out / folder.parent.name), "zip", args.out, folder.parent.name))
    else:
        print(folder)
