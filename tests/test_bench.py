"""The training-speed benchmark runs end to end on tiny data (no assertion on time).

One model and one worker setting keep it quick; the chapter memory run is a tiny one too.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_train_speed_runs_and_writes_json(fashion_root, tmp_path):
    out = tmp_path / "speed.json"
    cmd = [sys.executable, "-m", "bench.train_speed", "--data-root", str(fashion_root),
           "--num-train", "512", "--epochs", "1", "--models", "concise", "--workers", "0",
           "--json", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "samples/s" in run.stdout
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "settings", "results", "memory", "targets"}
    assert report["settings"]["num_train"] == 512
    assert set(report["results"]) == {"concise"}
    for res in report["results"].values():
        for key in ("bare_beside_verbose", "d2lai_verbose", "bare_beside_quiet", "d2lai_quiet",
                    "d2lai_beside_loaders", "dataloader_w0"):
            assert res[key]["samples_per_s"] > 0 and res[key]["train_s_per_epoch"] > 0
            assert len(res[key]["train_s_epochs"]) == 1  # the warm-up epoch is dropped
        for key in ("d2lai_verbose", "d2lai_quiet", "d2lai_beside_loaders"):
            assert res[key]["val_s_per_epoch"] > 0
        assert set(res["ratios"]) == {"d2lai_verbose/bare", "d2lai_quiet/bare",
                                      "dataloader_w0/d2lai"}
        assert all(r > 0 for r in res["ratios"].values())
        # the bare loop shuffles as d2lai does: on the CPU they train to the same weights
        assert all(d < 1e-5 for d in res["max_weight_diff_vs_bare"].values())
    assert report["memory"]["peak_rss_mib"] > 0
    assert all(isinstance(t["held"], bool) for t in report["targets"].values())
