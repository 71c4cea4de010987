"""TensorFlow's C++ logs, kept out of the notebooks' cells unless the user asks for them.

When training sets up its devices on a machine without a GPU, TensorFlow logs errors about the missing CUDA driver
("failed call to cuInit") and notes about its kernels; in JupyterLab they land in the cells as red text (the browser
tests look for them). TensorFlow reads TF_CPP_MIN_LOG_LEVEL when it loads, so the package sets it first, unless the
user set it: 3 (its C++ errors hidden too) on a machine without an NVIDIA driver, where they are about the missing
GPU; 1 (information hidden, warnings and errors shown) where there is one, so that a GPU's real errors still show.
TF_CPP_MIN_LOG_LEVEL=0 shows everything; Python's own errors and warnings are never hidden. (The two lines
TensorFlow prints while it is imported, before its logging starts, go to the process's stderr whatever the
variable says when it is set from Python: in JupyterLab, the server's terminal.)
"""

import os

VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def has_nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


def default_level() -> str:
    return "1" if has_nvidia_driver() else "3"


os.environ.setdefault(VARIABLE, default_level())
