"""The data-parallel benchmark's pieces run (no assertion on time): one configuration on one
rank, and the summary of the four configurations."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.distributed_speed import CONFIGS, summary

REPO = Path(__file__).resolve().parent.parent


def test_one_configuration_trains_and_reports(tmp_path):
    out = tmp_path / "one.json"
    cmd = [sys.executable, "-m", "bench.distributed_speed", "--worker", str(out),
           "--num-train", "128", "--num-val", "64", "--epochs", "1", "--batchsize", "64"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ranks"] == 1 and figures["steps"] == 2 and figures["samples_per_s"] > 0
    assert len(figures["train_s_epochs"]) == 1  # the warm-up epoch dropped
    assert figures["step_ms"] == pytest.approx(1000 * figures["train_s_epochs"][0] / 2)


def test_the_summary_compares_the_configurations():
    def run(samples_per_s, step_ms, **extra):
        return {"samples_per_s": samples_per_s, "step_ms": step_ms, **extra}

    talk = {"allreduce_grads_ms": 0.5, "allreduce_one_ms": 0.2}
    runs = {"1 rank, batch 128": [run(1000, 40), run(1200, 30)],
            "2 ranks, batch 128": [run(1800, 24, **talk)],
            "2 ranks, batch 128, sync BN": [run(1500, 30, **talk)],
            "1 rank, batch 64": [run(1900, 20)]}
    assert set(runs) == set(CONFIGS)
    s = summary(runs)
    assert s["speedup_2_ranks"] == pytest.approx(1800 / 1100)
    assert s["speedup_2_ranks_sync_bn"] == pytest.approx(1500 / 1100)
    assert s["communication_ms_per_step"] == pytest.approx(4)
    assert s["sync_bn_ms_per_step"] == pytest.approx(6)
