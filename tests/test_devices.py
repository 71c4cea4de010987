"""devices: the precision "auto" picks from the CPU's flags and the GPUs' compute capability, the machine's name."""

import pytest
import tensorflow as tf

from facegan.config import Config
from facegan import networks
from facegan import devices

ZEN3 = {"avx2", "fma", "sse4_2"}  # AVX2 only: bfloat16 is emulated, several times slower than float32
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize("flags, gpus, expected", [
    (ZEN3, [], "float32"),
    (ZEN4, [], "mixed_bfloat16"),
    (SAPPHIRE_RAPIDS, [], "mixed_bfloat16"),
    (set(), [], "float32"),  # nothing known (not Linux): the safe choice
    (ZEN3, [(8, 0)], "mixed_bfloat16"),  # an A100 trains, whatever the host CPU
    (ZEN4, [(7, 5)], "float32"),  # a T4 has no bfloat16 units
    (ZEN3, [(8, 6), (7, 0)], "float32"),  # every GPU must run it
    (ZEN3, [(9, 0), (8, 9)], "mixed_bfloat16"),
])
def test_auto_precision_is_bfloat16_only_where_the_device_runs_it_fast(flags, gpus, expected):
    precision, reason = devices.resolve_precision("auto", flags=flags, gpus=gpus)
    assert precision == expected and reason


@pytest.mark.parametrize("environ, expected", [
    ({}, "mixed_bfloat16"),
    ({"TF_ENABLE_ONEDNN_OPTS": "1"}, "mixed_bfloat16"),
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "float32"),  # what TensorFlow's start-up message suggests, for exact sums
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32"),
    ({"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}, "float32"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "mixed_bfloat16"),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, "mixed_bfloat16"),
])
def test_auto_precision_keeps_float32_where_the_environment_keeps_onednn_from_bfloat16(environ, expected):
    precision, reason = devices.resolve_precision("auto", flags=ZEN4, gpus=[], environ=environ)
    assert precision == expected
    if expected == "float32":
        assert next(iter(environ)) in reason  # training prints the reason: it names the variable
    assert devices.resolve_precision("auto", flags=ZEN4, gpus=[(8, 0)], environ=environ)[0] == "mixed_bfloat16"


def test_a_chosen_precision_is_kept_whatever_the_machine():
    for precision in devices.PRECISIONS:
        assert devices.resolve_precision(precision, flags=ZEN3, gpus=[]) == (precision, "chosen")


@pytest.mark.parametrize("flags, dtype", [(ZEN3, "float32"), (ZEN4, "bfloat16")])
def test_the_networks_compute_in_what_auto_picks_for_the_machine(monkeypatch, flags, dtype):
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    monkeypatch.setattr(devices, "gpu_capabilities", lambda: [])
    monkeypatch.setattr(devices.onednn, "enabled", lambda: True)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    generator = networks.build_generator(Config(precision="auto", generator_width=4, z_dim=8).networks)
    assert generator.get_layer("up1").compute_dtype == dtype


def test_cpu_flags_and_model_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                       "model name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert devices.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert devices.cpu_model(str(cpuinfo)) == "AMD EPYC 9B14 (family 25, model 17)"
    assert devices.cpu_flags(str(tmp_path / "missing")) == set()
    assert devices.cpu_model(str(tmp_path / "missing"))  # falls back to what the platform says


@pytest.mark.parametrize("onednn_on", [True, False])
def test_the_machine_line_names_the_cpu_its_instructions_and_onednn(monkeypatch, onednn_on):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: [])
    monkeypatch.setattr(devices, "cpu_flags", lambda: ZEN4)
    monkeypatch.setattr(devices.onednn, "enabled", lambda: onednn_on)
    line = devices.machine()
    assert line.startswith("CPU, ") and devices.cpu_model() in line and "avx512_bf16" in line
    assert line.endswith("oneDNN on" if onednn_on else "oneDNN off")
    monkeypatch.setattr(devices, "cpu_flags", lambda: ZEN3)
    assert "avx512_bf16" not in devices.machine() and "avx2" in devices.machine()


def test_the_machine_line_names_the_gpus_where_they_train(monkeypatch):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: ["gpu:0", "gpu:1"])
    monkeypatch.setattr(devices, "gpu_capabilities", lambda: [(8, 0), (8, 0)])
    assert devices.machine() == "2 GPU(s) (compute capability 8.0, 8.0)"


def test_a_process_makes_one_mirrored_strategy_and_reuses_it():
    """A second MirroredStrategy over the same devices failed the first step of a run whose step differed from the
    first run's (tests/test_distributed.py trains such runs on two logical CPUs): training again reuses the first."""
    first = devices.make_strategy("mirrored")
    assert devices.make_strategy("mirrored") is first
    assert devices.make_strategy("default") is not first
