"""TensorFlow's fast CPU kernels (oneDNN), on wherever the project runs. Imported before TensorFlow, by every module.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX. Elsewhere
(most laptops, many cloud machines: AVX2 only) it runs its Eigen kernels, about half as fast for this project's
training step, and says nothing (docs/speed.md). The variable TF_ENABLE_ONEDNN_OPTS decides, and TensorFlow reads
it once, when it is imported: so this module sets it to 1 unless the user set it, and every project module that
imports TensorFlow imports this module first (a test checks the order). A value the user set is kept: 0 turns
oneDNN off, as TensorFlow's start-up message suggests for exactly reproducible sums.

Where TensorFlow was imported before the project (an earlier notebook cell, another library), it is too late:
importing this module then says so once, with the fix, if TensorFlow left oneDNN off.
"""

import os
import sys
import warnings
from typing import Optional

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
USER_VALUE: Optional[str] = os.environ.get(VARIABLE)  # what the user set before the project was imported
TENSORFLOW_IMPORTED_FIRST = "tensorflow" in sys.modules  # TensorFlow has read the variable already

if USER_VALUE is None and not TENSORFLOW_IMPORTED_FIRST:
    os.environ[VARIABLE] = "1"


def enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process (imports TensorFlow to ask it)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # another TensorFlow build: what the variable asks for
        return os.environ.get(VARIABLE, "1").strip().lower() not in ("0", "false", "off")


def state() -> str:
    """"oneDNN on" or "oneDNN off (why)", for the machine line of every figure the project publishes."""
    if enabled():
        limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
        return f"oneDNN on (ONEDNN_MAX_CPU_ISA={limit})" if limit and limit.upper() != "ALL" else "oneDNN on"
    if USER_VALUE is not None:
        return f"oneDNN off ({VARIABLE}={USER_VALUE})"
    return "oneDNN off (TensorFlow was imported before the project)" if TENSORFLOW_IMPORTED_FIRST else "oneDNN off"


TOO_LATE = ("TensorFlow was imported before this project and left its oneDNN kernels off on this CPU: training "
            "runs about half as fast. Restart the kernel (or Python) and import the project before TensorFlow, "
            f"or set {VARIABLE}=1 before starting Python.")

if TENSORFLOW_IMPORTED_FIRST and USER_VALUE is None and not enabled():
    warnings.warn(TOO_LATE, stacklevel=2)
