"""Two processes loading a fresh data root (only the .gz files there) at the same moment."""

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

from filelock import FileLock

import d2lai
from d2lai.data import FASHION_MNIST_FILES
from d2lai.testing import write_fake_fashion_mnist

REPO = Path(__file__).resolve().parent.parent
ROUNDS, N_TRAIN, N_VAL = 3, 3000, 500

# Each process imports d2lai once, then for each round says it is ready, waits for the go
# file (so that both start loading together), loads that round's root and prints a digest.
CHILD = r"""
import hashlib, sys, time
from pathlib import Path
import d2lai
work, me, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for r in range(rounds):
    (work / f"ready-{r}-{me}").touch()
    while not (work / f"go-{r}").exists():
        time.sleep(0.001)
    data = d2lai.FashionMNISTData(root=work / f"root-{r}", download=False)
    h = hashlib.sha256()
    for t in (*data.train, *data.val):
        h.update(t.numpy().tobytes())
    print(r, h.hexdigest(), flush=True)
"""


def _digest(data) -> str:
    h = hashlib.sha256()
    for t in (*data.train, *data.val):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _wait_for(paths, procs, timeout=120):
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                return
        assert time.monotonic() < deadline, "the loading processes did not get ready"
        time.sleep(0.005)


def test_two_processes_unpack_a_fresh_root_at_once(tmp_path):
    for r in range(ROUNDS):
        write_fake_fashion_mnist(tmp_path / f"root-{r}", N_TRAIN, N_VAL, seed=r, gz=True)
    expected = []
    for r in range(ROUNDS):  # the same data, unpacked apart by one process
        write_fake_fashion_mnist(tmp_path / f"ref-{r}", N_TRAIN, N_VAL, seed=r)
        expected.append(_digest(d2lai.FashionMNISTData(root=tmp_path / f"ref-{r}")))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), me, str(ROUNDS)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for me in ("a", "b")]
    try:
        for r in range(ROUNDS):
            _wait_for([tmp_path / f"ready-{r}-{me}" for me in ("a", "b")], procs)
            (tmp_path / f"go-{r}").touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert out.split() == [w for r in range(ROUNDS) for w in (str(r), expected[r])]
    for r in range(ROUNDS):
        raw = tmp_path / f"root-{r}" / "FashionMNIST" / "raw"
        assert not [p.name for p in raw.iterdir() if p.name.endswith(".tmp")]
        for name, _, _ in FASHION_MNIST_FILES:
            ref = tmp_path / f"ref-{r}" / "FashionMNIST" / "raw" / name
            assert (raw / name).read_bytes() == ref.read_bytes()


def test_a_loader_waits_for_the_process_holding_the_lock(tmp_path):
    raw = write_fake_fashion_mnist(tmp_path, num_train=20, num_val=10, gz=True)
    result = {}

    def load():
        result["data"] = d2lai.FashionMNISTData(root=tmp_path)

    with FileLock(str(raw / ".unpack.lock")):  # another process is unpacking
        thread = threading.Thread(target=load)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # it waits for the lock ...
        assert not any((raw / name).exists() for name, _, _ in FASHION_MNIST_FILES)
    thread.join(30)
    assert not thread.is_alive()  # ... and goes on once the lock is free
    assert result["data"].train[0].shape == (20, 28, 28)
