"""The per-batch cost of metrics: what measuring a batch adds to a training step.

Run from the repository root: `python -m bench.metric_cost` (`--help` lists the flags).

For a batch of 128 with 10 class probabilities (BLeNet's head), each metric set's
`Measure.update` is timed over `--batches` batches, the sets in turn, `--rounds` times (the
order rotated each round); the figure is the median round's microseconds a batch. Beside them:
the two in-place sums the loop made before metrics were objects (loss and accuracy, as the
former training-figures callback), and a whole training step of BLeNetConcise (forward,
loss, backward, step) on such a batch, so that each set's cost reads as a share of a step.
"""

from __future__ import annotations

import statistics
import time

import torch

import d2lai
from bench.common import add_json, finish, machine, parser, positive, rotated
from chapters.batch_norm import BLeNetConcise
from d2lai.metrics import Measure, MetricList, TopKAccuracy


def time_it(step, batches: int) -> float:
    """Microseconds a call of `step`, over `batches` calls."""
    tic = time.perf_counter()
    for _ in range(batches):
        step()
    return (time.perf_counter() - tic) / batches * 1e6


def metric_sets(model) -> dict:
    """The metric sets measured: the family's, then one more metric at a time."""
    sets = {"family (loss, accuracy)": MetricList(model.METRICS),
            "family + top-5": MetricList([*model.METRICS, TopKAccuracy(5)])}
    try:
        from torchmetrics.classification import MulticlassF1Score

        sets["family + top-5 + torchmetrics F1"] = MetricList(
            [*model.METRICS, TopKAccuracy(5), MulticlassF1Score(10)])
    except ImportError:
        pass
    return sets


def main(argv: list[str] | None = None) -> dict:
    p = parser("metric_cost", __doc__.splitlines()[0])
    p.add_argument("--batches", type=positive, default=2000, help="batches a timing")
    p.add_argument("--rounds", type=positive, default=5, help="timings of each set")
    p.add_argument("--steps", type=positive, default=50, help="training steps a timing")
    p.add_argument("--threads", type=positive, default=1, help="torch threads")
    add_json(p, "metric_cost")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    d2lai.seed(0)
    model = BLeNetConcise()
    X, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    outputs = torch.rand(128, 10).softmax(-1)
    loss = model.loss(outputs, y)
    batch = (X, y)

    def before():  # the loop's two sums before metrics were objects
        sums[0].add_(loss.detach(), alpha=128)
        sums[1].add_(model.accuracy(outputs.detach(), y), alpha=128)

    sums = [torch.zeros((), dtype=torch.float64) for _ in range(2)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(X)  # lazy layers take their shapes

    def train_step():
        out = model.loss(model(X), y)
        opt.zero_grad()
        out.backward()
        opt.step()

    cases = {"before: two in-place sums": before}
    for name, metrics in metric_sets(model).items():
        measure = Measure(metrics, "train", model, device)
        cases[name] = lambda m=measure: m.update(outputs, batch, loss)
    step_us = statistics.median(time_it(train_step, args.steps) for _ in range(args.rounds))
    times = {name: [] for name in cases}
    for r in range(args.rounds):
        for name in rotated(list(cases), r):
            times[name].append(time_it(cases[name], args.batches))
    rows = {name: {"us_per_batch": statistics.median(t),
                   "share_of_step": statistics.median(t) / step_us} for name, t in times.items()}
    report = {"machine": machine(device), "threads": args.threads, "step_us": step_us,
              "metrics": rows}
    return finish(report, print_table, args.json)


def print_table(report: dict) -> None:
    threads = report["threads"]
    print(f"a training step of BLeNetConcise, batch 128: {report['step_us'] / 1000:.2f} ms "
          f"({threads} thread{'s' * (threads > 1)})")
    print(f"{'metrics measured a batch':36} {'us/batch':>9} {'of a step':>10}")
    for name, row in report["metrics"].items():
        print(f"{name:36} {row['us_per_batch']:9.1f} {row['share_of_step']:10.2%}")


if __name__ == "__main__":
    main()
