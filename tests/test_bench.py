"""bench: its help prints before TensorFlow loads, and --json keeps the figures it printed as a record naming the
machine, the precision, the data and the settings."""

import json
import re
import subprocess
import sys

import pytest

from experiments import bench
from conftest import TINY


def test_help_prints_without_loading_tensorflow():
    script = ("import sys\nfrom experiments import bench\ntry:\n    bench.main(['--help'])\n"
              "except SystemExit:\n    pass\n"
              "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "--precision" in result.stdout and "tensorflow not loaded" in result.stdout, result.stderr[-2000:]
    assert "port.cc" not in result.stderr  # none of TensorFlow's start-up lines before the help


def run_bench(record_path, made_faces, cache_dir, capsys, *flags) -> tuple:
    """bench's training figures for the tiny networks on the made faces: (what it printed, the record it wrote)."""
    settings = [f"--{name.replace('_', '-')}={value}" for name, value in TINY.items()]
    bench.main(settings + ["--image-path", str(made_faces / "img_align_celeba"), "--cache-dir", cache_dir,
                           "--skip-decode", "--training-only", "--steps-per-interval", "1", "--repeats", "1",
                           *flags, "--json", str(record_path)])
    return capsys.readouterr().out, json.loads(record_path.read_text())


def printed_figure(printed: str, label: str) -> float:
    """The number bench printed after `label`. It prints a figure to one decimal and records it to three, so the
    two may round apart by a tenth (64.6499 prints as 64.6, records as 64.65, which prints as 64.7)."""
    found = re.search(re.escape(label) + r"\s*([0-9.]+) images/s", printed)
    assert found, f"{label!r} not in what bench printed:\n{printed}"
    return float(found.group(1))


def test_the_json_record_holds_the_printed_figures_and_what_they_were_measured_on(tmp_path, made_faces, cache_dir,
                                                                                   capsys):
    record_path = tmp_path / "bench.json"
    printed, record = run_bench(record_path, made_faces, cache_dir, capsys)
    figures = record["figures"]
    assert abs(printed_figure(printed, "training, step only:") - figures["step_images_per_second"]) <= 0.051
    assert abs(printed_figure(printed, "training, end to end:") - figures["end_to_end_images_per_second"]) <= 0.051
    assert record["precision"] == "float32" and record["settings"]["training"]["batch_size"] == TINY["batch_size"]
    assert record["data"].endswith("img_align_celeba") and "cores" in record["machine"] and record["date"]
    row = bench.table([str(record_path)]).splitlines()[2]  # docs/speed.md's table is made from records alone
    assert f"| {figures['step_images_per_second']:.1f} | {figures['end_to_end_images_per_second']:.1f} |" in row
    assert row.startswith("| [bench.json](") and "| float32 | as the project sets it | off | framework |" in row
    assert "small maps framework" in printed  # float32: TensorFlow's kernels on the small maps too
    assert f"discriminator batches {record['settings']['recipe']['discriminator_batches']}," in printed


def test_layers_measures_every_strided_convolution_both_ways(tmp_path, made_faces, cache_dir, capsys):
    printed, record = run_bench(tmp_path / "bench.json", made_faces, cache_dir, capsys, "--layers")
    layers = record["figures"]["layers"]
    assert [row["layer"] for row in layers] == ["down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4"]
    assert layers[0]["input"] == [64, 64, 3] and layers[-1]["output"] == [64, 64, 3]
    for row in layers:
        for path in ("framework", "matmul"):
            for part in ("forward", "input_gradient", "filter_gradient"):
                assert row[f"{path}_{part}_gflops"] > 0
        assert row["layer"] in printed
    assert record["figures"]["matmul_gflops"] > 0 and "the matrix product 4096²" in printed


@pytest.mark.slow
def test_workers_prints_one_process_and_two_workers_of_a_cluster_on_this_machine(tmp_path, made_faces, cache_dir,
                                                                                capsys):
    printed, record = run_bench(tmp_path / "bench.json", made_faces, cache_dir, capsys, "--workers", "2")
    figures = record["figures"]
    for count, line in ((1, "1 process on"), (2, "2 processes on")):
        speed = figures[f"training_{count}_process_images_per_second"]
        assert speed > 0 and abs(printed_figure(printed, f"training as {line} this machine:") - speed) <= 0.051
