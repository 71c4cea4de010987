"""Score a training run's faces, or a folder of images, with the project's metrics: one line per metric.

    python score.py --checkpoint my_net --data img_align_celeba --samples 2048 --metrics swd,fid,kid
    python score.py --checkpoint my_net --step 18000 --data img_align_celeba
    python score.py --images my_faces/ --data img_align_celeba

A checkpoint is scored exactly as training scores it (sampler.score_generator: the faces of seeds 0 … samples − 1,
against a fixed sample of as many real faces), so this repeats a number of my_net/metrics.csv.
"""

import argparse

import celeba_utils
from facegan.metrics import maths, registry, sampler
from facegan.settings_text import add_arguments


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a training run's folder (my_net)")
    source.add_argument("--images", help="a folder of generated images")
    parser.add_argument("--step", type=int, help="the checkpoint's step (default: the newest)")
    parser.add_argument("--data", required=True, help="the real faces: a folder or zip of images")
    add_arguments(parser, ("metric_samples", "metrics", "cache_dir"), flags={"metric_samples": "samples"})
    parser.set_defaults(metrics=list(registry.METRICS))  # every metric, where training's default scores SWD alone
    parser.add_argument("--seed", type=int, default=0, help="the first face's seed, and the real sample's")
    arguments = parser.parse_args()

    names = registry.check_names(arguments.metrics, "--metrics")
    samples, seed, cache_dir = arguments.metric_samples, arguments.seed, arguments.cache_dir
    faces = celeba_utils.load_faces(arguments.data, cache_dir=cache_dir)
    if arguments.checkpoint:
        result = sampler.score_checkpoint(arguments.checkpoint, faces.images, samples, names, arguments.step, cache_dir,
                                          seed)
    else:
        generated = celeba_utils.load_faces(arguments.images, cache_dir=cache_dir).images[:samples]
        result = registry.evaluate(generated, maths.real_sample(faces.images, samples, seed), names, cache_dir, seed)
    print(registry.report(result))


if __name__ == "__main__":
    main()
