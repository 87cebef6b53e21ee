"""The data-memory benchmark runs end to end on tiny data (no assertion on time or memory size)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_data_memory_runs_and_writes_json(fashion_root, tmp_path):
    out = tmp_path / "memory.json"
    cmd = [sys.executable, "-m", "bench.data_memory", "--data-root", str(fashion_root),
           "--num-train", "256", "--num-val", "64", "--passes", "1", "--json", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "samples/s" in run.stdout and "bounds:" in run.stdout
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "settings", "memory", "speed", "former_224", "bounds"}
    memory = report["memory"]
    assert list(memory) == ["import", "float32_28", "uint8_28", "uint8_224", "epoch_224"]
    assert all(m["peak_rss_mib"] > 0 for m in memory.values())
    # what each case stored: 600 + 200 images, labels as int64
    labels = 800 * 8
    assert memory["uint8_28"]["stored_shape"] == [600, 28, 28]
    assert memory["uint8_28"]["dtype"] == "torch.uint8"
    assert memory["uint8_28"]["stored_mib"] * 2 ** 20 == 800 * 784 + labels
    assert memory["uint8_224"]["stored_mib"] == memory["uint8_28"]["stored_mib"]
    assert memory["float32_28"]["stored_shape"] == [600, 1, 28, 28]
    assert memory["float32_28"]["stored_mib"] * 2 ** 20 == 800 * 784 * 4 + labels
    epoch = memory["epoch_224"]
    assert (epoch["num_train"], epoch["num_val"]) == (256, 64) and 0 <= epoch["val_acc"] <= 1
    assert report["former_224"]["stored_mib"] == pytest.approx(800 * 224 * 224 * 4 / 2 ** 20)
    speed = report["speed"]
    assert speed["same_batches"] is True and speed["num_train"] == 600
    for key in ("float32", "uint8"):
        assert speed[key]["samples_per_s"] > 0 and len(speed[key]["s_passes"]) == 1
    assert speed["ratio_uint8/float32"] > 0
    assert len(report["bounds"]) == 4
    assert all(isinstance(b["held"], bool) for b in report["bounds"].values())


def test_data_memory_refuses_bad_flags():
    run = subprocess.run([sys.executable, "-m", "bench.data_memory", "--passes", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--passes must be a positive integer" in run.stderr
