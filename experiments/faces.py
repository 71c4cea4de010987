"""The face sets the experiments train on and are judged against, made from the CelebA folders beside the project:
"small" (img_align_celeba, the 5,100-face sample), "large" (the sample and the 10,000 half-resolution faces, less the
held-out faces) and "held_out" (2,048 half-resolution faces in neither training set, fixed by a seed); and
"small_at_half", the sample's faces that the half-resolution folder holds too, at its resolution: what the held-out
faces are fairly compared with."""

import os
from typing import Dict

import numpy as np

HELD_OUT = 2048


def split_faces(celeba: str, work_dir: str, held_out: int = HELD_OUT, seed: int = 0) -> Dict[str, str]:
    """The four folders: "small" (the sample itself), "large", "held_out" and "small_at_half" (folders of links made
    in work_dir, the same every time)."""
    full_folder = os.path.join(celeba, "img_align_celeba")
    half_folder = os.path.join(celeba, "img_align_celeba_89x109")
    for folder in (full_folder, half_folder):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"No {folder}: --celeba must hold img_align_celeba/ and "
                                    "img_align_celeba_89x109/")
    full, half = sorted(os.listdir(full_folder)), sorted(os.listdir(half_folder))
    outside = sorted(set(half) - set(full))
    if len(outside) < held_out:
        raise ValueError(f"Only {len(outside)} faces of {half_folder} are not in {full_folder}; {held_out} are held "
                         "out")
    kept_out = set(np.random.default_rng(seed).choice(outside, held_out, replace=False))
    sources = {"large": [os.path.join(full_folder, name) for name in full] +
               [os.path.join(half_folder, name) for name in half if name not in set(full) and name not in kept_out],
               "held_out": [os.path.join(half_folder, name) for name in sorted(kept_out)]}
    sources["small_at_half"] = [os.path.join(half_folder, name) for name in sorted(set(full) & set(half))]
    folders = {"small": full_folder}
    for name, paths in sources.items():
        folder = os.path.join(work_dir, name)
        os.makedirs(folder, exist_ok=True)
        for path in paths:
            link = os.path.join(folder, os.path.basename(path))
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
        folders[name] = folder
    return folders
