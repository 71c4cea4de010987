"""Fit the attribute directions of a trained run, so that its faces can be edited ("Smiling": 3 in a waypoint, the
explorer's sliders in interpolate.ipynb): trains the attribute classifier on CelebA's faces and labels first
(into my_net/attributes, once), then fits a direction in z for each attribute (my_net/directions.npz).

    python directions.py --checkpoint my_net --data img_align_celeba

The folder needs CelebA's list_attr_celeba.txt beside it. How it works and what it measured: docs/editing.md.
"""

import argparse

from facegan import editing
from facegan.settings_text import add_arguments


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="my_net", help="the trained run's folder (default my_net)")
    parser.add_argument("--data", nargs="+", required=True, help="CelebA folders the classifier trains on")
    add_arguments(parser, ("cache_dir",))
    arguments = parser.parse_args()
    _, _, _, directions = editing.prepare_run(arguments.checkpoint, arguments.data, arguments.cache_dir)
    print(f"{len(directions.names)} directions saved in {arguments.checkpoint}; the best separated: "
          f"{', '.join(directions.strongest(8))}")


if __name__ == "__main__":
    main()
