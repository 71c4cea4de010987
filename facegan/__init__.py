"""The face DCGAN's library: networks, training, saved runs, drawing, metrics and editing.

Importing the package first sets what TensorFlow reads once, when it loads, before any of its modules imports it:
its fast oneDNN CPU kernels on (facegan/onednn.py), and its C++ start-up logs out of the notebooks' cells
(facegan/logs.py). A value the user set is kept.
"""

from facegan import logs, onednn  # noqa: F401  (first of all: set before TensorFlow loads)
