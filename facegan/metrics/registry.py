"""The metrics by name: what each computes from a generated and a real set of faces, the columns it reports, and
`evaluate`, which runs any of them (training's metrics.csv, score.py, the ablation and the notebook all go through
it). Every result carries the sample counts, since FID and KID depend on them."""

from typing import Callable, Dict, Optional, Sequence, Tuple

from facegan.metrics.inception import InceptionFeatures
from facegan.metrics.maths import as_uint8, fid_from_features, kid_from_features, precision_recall, real_sample, swd


def _swd_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    count = min(len(generated), len(real))
    return swd(generated[:count], real_sample(real, count, seed), levels=SWD_LEVELS, seed=seed)


def _fid_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    return {"fid": fid_from_features(features.real, features.generated)}


def _kid_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    return {"kid": kid_from_features(features.real, features.generated, seed=seed)}


def _precision_recall_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    return precision_recall(features.real, features.generated)


SWD_LEVELS = 3
# name → (function of (generated, real, features, seed) → values, the columns it reports for a face size)
METRICS: Dict[str, Tuple[Callable, Callable[[int], Tuple[str, ...]]]] = {
    "swd": (_swd_metric, lambda size: tuple(f"swd{size >> level}" for level in range(SWD_LEVELS)) + ("swd",)),
    "fid": (_fid_metric, lambda size: ("fid",)),
    "kid": (_kid_metric, lambda size: ("kid",)),
    "pr": (_precision_recall_metric, lambda size: ("precision", "recall")),  # Kynkäänniemi et al. 2019
}


def check_names(names: Sequence[str], setting: str = "metrics") -> list:
    """The metric names as a list, or a ValueError naming the setting and the choices."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"{setting} must be a non-empty list of {', '.join(METRICS)}, got {names!r}")
    return names


def columns(names: Sequence[str], image_size: int = 64) -> Tuple[str, ...]:
    """Every value `evaluate` reports for these metrics on faces of this size, after the sample counts."""
    return ("generated", "real") + tuple(column for name in check_names(names) for column in
                                         METRICS[name][1](image_size))


def evaluate(generated, real, names: Sequence[str] = ("swd",), cache_dir: Optional[str] = None,
             seed: int = 0) -> Dict[str, float]:
    """The chosen metrics of generated faces against real ones, with the sample counts ('generated', 'real')."""
    names = check_names(names)
    generated, real = as_uint8(generated), as_uint8(real)
    features = InceptionFeatures(generated, real, cache_dir)
    result = {"generated": len(generated), "real": len(real)}
    for name in names:
        result.update(METRICS[name][0](generated, real, features, seed))
    return result


def report(result: Dict[str, float]) -> str:
    """One line per metric, each with the sample counts."""
    counts = f"({result['generated']} generated vs {result['real']} real faces)"
    return "\n".join(f"{name:6s} {value:10.4f}   {counts}" for name, value in result.items()
                     if name not in ("generated", "real"))
