"""The face DCGAN's library: networks, training, saved runs, drawing, metrics and editing.

Importing the package first turns on TensorFlow's fast oneDNN CPU kernels (facegan/onednn.py), before any of its
modules imports TensorFlow.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)
