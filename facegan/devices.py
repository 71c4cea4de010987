"""The machine: what CPU and GPUs it has, the precision "auto" picks on it, and the tf.distribute strategy.

Every speed figure the project publishes names the machine it was measured on: `machine()` is that line. TensorFlow
is loaded by the functions that ask it, not on import, so the settings (facegan/config.py) and the command lines'
flags load without it (`--help` prints at once).
"""

import functools
import os
import platform
import subprocess
from typing import TYPE_CHECKING, Mapping, Optional

from facegan import onednn

if TYPE_CHECKING:
    import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# CPU flags of bfloat16 matrix instructions (oneDNN uses them): where mixed bfloat16 runs faster than float32
FAST_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
FAST_BFLOAT16_GPU_CAPABILITY = (8, 0)  # Ampere and later
# oneDNN instruction-set limits (ONEDNN_MAX_CPU_ISA) below its bfloat16 kernels: with them, as with oneDNN off
# (TF_ENABLE_ONEDNN_OPTS=0), TensorFlow computes bfloat16 without those instructions
ONEDNN_ISAS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


@functools.lru_cache(maxsize=None)  # read once per process: every network build and record asks
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name with its family and model numbers (Linux: "AMD EPYC" alone does not tell Zen 3,
    family 25 model 1, from Zen 4, model 17), or what the platform module knows."""
    fields = {}
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    numbers = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
    return fields["model name"] + numbers


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The instruction-set flags of this machine's CPU (Linux); empty where the file cannot be read."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def gpu_capabilities() -> list:
    """The CUDA compute capability, (major, minor), of each GPU TensorFlow sees."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def onednn_bfloat16_off(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Why TensorFlow's oneDNN kernels cannot use the CPU's bfloat16 instructions in this process (the environment
    variable that turns them off or limits them, or oneDNN found off), or None. `environ` defaults to this
    process's, and then TensorFlow is also asked whether oneDNN is on (onednn.enabled)."""
    process = environ is None
    environ = os.environ if environ is None else environ
    if environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        return "TF_ENABLE_ONEDNN_OPTS=0 turns off oneDNN, whose kernels use the bfloat16 instructions"
    if process and not onednn.enabled():
        return f"{onednn.state()}: its kernels use the bfloat16 instructions"
    isa = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa in ONEDNN_ISAS_WITHOUT_BFLOAT16:
        return f"ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN from the bfloat16 instructions"
    return None


def resolve_precision(precision: str, flags: Optional[set] = None, gpus: Optional[list] = None,
                      environ: Optional[Mapping[str, str]] = None):
    """(precision, reason): the precision "auto" stands for on this machine, else `precision` itself.
    "auto" is mixed bfloat16 where the device has bfloat16 matrix units (every GPU of compute capability 8.0 or
    more; on the CPU, the flags amx_bf16 or avx512_bf16, used by oneDNN unless the environment turns it off) and
    float32 elsewhere: on an AVX2-only CPU bfloat16 is emulated and runs several times slower than float32.
    `flags`, `gpus` and `environ` default to this machine's and this process's."""
    if precision != "auto":
        return precision, "chosen"
    gpus = gpu_capabilities() if gpus is None else gpus
    if gpus:
        slow = [capability for capability in gpus if tuple(capability) < FAST_BFLOAT16_GPU_CAPABILITY]
        if slow:
            return "float32", f"GPU of compute capability {'.'.join(map(str, slow[0]))} (bfloat16 needs 8.0+)"
        return "mixed_bfloat16", f"GPUs of compute capability {', '.join('.'.join(map(str, c)) for c in gpus)}"
    flags = cpu_flags() if flags is None else flags
    fast = [flag for flag in FAST_BFLOAT16_CPU_FLAGS if flag in flags]
    off = onednn_bfloat16_off(environ)
    if fast and off:
        return "float32", f"CPU with {' and '.join(fast)}, but {off}"
    if fast:
        return "mixed_bfloat16", f"CPU with {' and '.join(fast)}"
    return "float32", "CPU without bfloat16 instructions (no amx_bf16 or avx512_bf16)"


def machine() -> str:
    """One line naming what trains here: the GPUs, or the CPU with its cores, its instructions (AVX2 only,
    AVX-512 BF16, AMX) and whether TensorFlow's oneDNN kernels run on it, which halves or doubles its speed."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        capabilities = ", ".join(".".join(map(str, capability)) for capability in gpu_capabilities())
        return f"{len(gpus)} GPU(s) (compute capability {capabilities})"
    flags = cpu_flags()
    isa = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"CPU, {os.cpu_count()} cores, {cpu_model()} ({', '.join(isa) or 'no AVX2'}), {onednn.state()}"


PROJECT_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_version(folder: str = PROJECT_FOLDER) -> Optional[str]:
    """The project's git commit, with "+changes" when its tracked files differ from it; None where the code is not a
    git checkout (an installed copy) or git is missing. A run resumed with other code trains another recipe, as a
    changed setting does: starts.jsonl keeps which code each start ran."""
    try:
        commit = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30)
        if commit.returncode != 0:
            return None
        changes = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+changes" if changes.stdout.strip() else "")


_STRATEGIES: dict = {}  # make_strategy's, by setting and devices


def make_strategy(name: str) -> "tf.distribute.Strategy":
    """The tf.distribute strategy of a `strategy` setting ("default": the current one device). "mirrored" spans
    every GPU of the machine; without GPUs, every logical CPU device: one, unless the CPU was split
    (tf.config.set_logical_device_configuration), which is how the tests run the multi-GPU branch on a CPU. Made
    once per process: every run of the process after the first gets the same strategy."""
    import tensorflow as tf

    if name not in ("mirrored", "multi_worker"):
        return tf.distribute.get_strategy()
    # One strategy per process and device set, made once: a second MirroredStrategy over the same devices numbers
    # its collectives from the start again, and TensorFlow, which keeps the first one's, then fails the first step
    # of a run whose step differs ("Shape mismatch in the collective instance"): a notebook re-running training
    # with another setting, tests/test_distributed.py
    devices = () if name == "multi_worker" or tf.config.list_logical_devices("GPU") else \
        tuple(device.name for device in tf.config.list_logical_devices("CPU"))
    key = (name, devices)
    if key not in _STRATEGIES:
        if name == "mirrored":
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(list(devices) or None)
        else:  # the cluster comes from the TF_CONFIG environment variable
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


def is_chief(strategy: "tf.distribute.Strategy") -> bool:
    """Whether this process writes the run's files (grids, logs, the real checkpoints)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def spans_workers(strategy: "tf.distribute.Strategy") -> bool:
    """Whether the strategy trains across several processes (workers of a TF_CONFIG cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    return sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()) > 1


def has_gpu() -> bool:
    """Whether TensorFlow trains on GPUs here: the automatic XLA setting turns on for them."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def setup_devices():
    """Let TensorFlow grow GPU memory as needed instead of taking all of it; say which device trains."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: the setting stands as it was
            pass
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"

