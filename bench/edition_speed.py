"""The PyTorch edition's code on `d2lai.torch` against the book's own `d2l` 1.0.3, side by side.

Run from the repository root: `python -m bench.edition_speed` (`--help` lists the flags). The
book's package is for this benchmark only, never a dependency of d2lai; it pins old versions of
numpy, pandas, matplotlib and jupyter that would replace current ones (or not install at all on
current Python), so install it without them:

    pip install --no-deps d2l==1.0.3

(what it imports, torchvision, pandas, requests, IPython and matplotlib-inline, is there with
d2lai's dev extras). Without it, only the d2lai side runs.

Each workload is one piece of the edition's code, run once with each library as `d2l`:

- bn: the batch-norm section's concise LeNet (batch norm after each convolution and dense
  layer, sigmoids, lr 0.1, `apply_init` with `init_cnn`), `FashionMNIST(batch_size=128)`,
  `Trainer(max_epochs=1)`: one epoch and its validation pass.
- rnn: the RNN chapter's language model from scratch, `RNNLMScratch(RNNScratch(V, 32), V,
  lr=1)` on `TimeMachine(batch_size=1024, num_steps=32)` of a generated corpus,
  `Trainer(max_epochs=--rnn-epochs, gradient_clip_val=1)`.
- sentiment: the sentiment-analysis-with-an-RNN section: `load_data_imdb(64)` (reviews padded
  to 500 words) on an IMDb stand-in of --imdb-reviews reviews a split, its bidirectional
  two-layer LSTM (100 hiddens) over `TokenEmbedding('glove.6b.100d')` vectors (a stand-in
  too), frozen, trained with Adam at 0.01 for --sentiment-epochs by the step of the book's
  `train_ch13` (summed unreduced cross-entropy), one loop of this file over each library's
  batches.

Times: the wall time of `trainer.fit(model, data)` (for sentiment, of the training loop), and
of building the data module apart (for sentiment, `load_data_imdb` and `TokenEmbedding`).
Each library as it behaves in a script: the book's board redraws its matplotlib figure at each
point (its display output is swallowed) and its Fashion-MNIST loader runs 4 worker processes;
d2lai's loop logs one line an epoch. The libraries alternate, `--repeats` rounds, the one that
goes first rotating; every run starts from the same seed and torch's thread count is the same
for both. The figures (validation accuracy, perplexity, test accuracy) are measured after each
fit by one loop of this file over the same validation data, not by either library's own report.

The book's `d2l` reads and writes its data under `../data` from the working directory (its
notebooks run from a chapter's folder) and downloads what is missing or differs from its
SHA-1: the book's data modules are built from a folder whose `../data` holds the files, with its
`download` replaced by one that only looks there, so nothing goes to the network.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from bench.common import (
    add_json,
    finish,
    machine,
    parse,
    parser,
    positive,
    print_held,
    rotated,
    setup,
    sync,
)
from d2lai.data import FASHION_MNIST_FILES
from d2lai.testing import (
    write_fake_embedding,
    write_fake_fashion_mnist,
    write_fake_imdb,
    write_fake_time_machine,
)

SEED = 0
WORKLOADS = ("bn", "rnn", "sentiment")
FIGURES = {"bn": "val_acc", "rnn": "val_ppl", "sentiment": "test_acc"}
TARGETS = {"bn": 1.6,  # the book's time over d2lai's, at most 0.02 apart in accuracy
           # the data (the library's readers) at least as fast as the book's; training, the
           # same model and loop over each library's batches, within the noise of a shared CPU
           "sentiment data": 1.0, "sentiment fit": 0.95}


# --- the edition's code, for either library -------------------------------------------------------

def bn_lenet(d2l):
    """The concise batch-norm LeNet, as a class of `d2l.Classifier`."""
    class BNLeNet(d2l.Classifier):
        def __init__(self, lr=0.1, num_classes=10):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(),
                nn.AvgPool2d(kernel_size=2, stride=2),
                nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(),
                nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
                nn.LazyLinear(120), nn.LazyBatchNorm1d(), nn.Sigmoid(),
                nn.LazyLinear(84), nn.LazyBatchNorm1d(), nn.Sigmoid(),
                nn.LazyLinear(num_classes))

    return BNLeNet


def run_bn(d2l, args: argparse.Namespace, in_book_folder: Callable) -> dict:
    """One epoch of the batch-norm LeNet; its times and the model."""
    torch.manual_seed(SEED)
    tic = time.perf_counter()
    with in_book_folder():
        data = d2l.FashionMNIST(batch_size=128)
    data_s = time.perf_counter() - tic
    model = bn_lenet(d2l)(lr=0.1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    trainer = d2l.Trainer(max_epochs=1, num_gpus=int(args.gpu))
    return {"data_s": data_s, "fit_s": timed_fit(trainer, model, data), "model": model}


def run_rnn(d2l, args: argparse.Namespace, in_book_folder: Callable) -> dict:
    """The scratch RNN language model for --rnn-epochs; its times, the model and the data."""
    torch.manual_seed(SEED)
    tic = time.perf_counter()
    with in_book_folder():
        data = d2l.TimeMachine(batch_size=1024, num_steps=32, num_train=args.rnn_num_train,
                               num_val=args.rnn_num_val)
    data_s = time.perf_counter() - tic
    rnn = d2l.RNNScratch(num_inputs=len(data.vocab), num_hiddens=32)
    model = d2l.RNNLMScratch(rnn, vocab_size=len(data.vocab), lr=1)
    trainer = d2l.Trainer(max_epochs=args.rnn_epochs, gradient_clip_val=1,
                          num_gpus=int(args.gpu))
    return {"data_s": data_s, "fit_s": timed_fit(trainer, model, data), "model": model,
            "data": data}


class BiRNN(nn.Module):
    """The sentiment section's model: embeddings into a bidirectional LSTM, the outputs of the
    first and the last step (both directions) into a linear layer of two classes."""

    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.encoder = nn.LSTM(embed_size, num_hiddens, num_layers=num_layers,
                               bidirectional=True)
        self.decoder = nn.Linear(4 * num_hiddens, 2)

    def forward(self, inputs):  # inputs (N, T)
        outputs, _ = self.encoder(self.embedding(inputs.T))  # (T, N, 2h), time first
        return self.decoder(torch.cat((outputs[0], outputs[-1]), dim=1))  # (N, 2)


def run_sentiment(d2l, args: argparse.Namespace, in_book_folder: Callable) -> dict:
    """The sentiment RNN for --sentiment-epochs; its times, the model and the test batches."""
    torch.manual_seed(SEED)
    tic = time.perf_counter()
    with in_book_folder():
        train_iter, test_iter, vocab = d2l.load_data_imdb(64)
        glove = d2l.TokenEmbedding("glove.6b.100d")
    data_s = time.perf_counter() - tic
    model = BiRNN(len(vocab), 100, 100, 2)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        if isinstance(m, nn.LSTM):
            for name, param in m.named_parameters():
                if "weight" in name:
                    nn.init.xavier_uniform_(param)
    model.embedding.weight.data.copy_(glove[vocab.idx_to_token])
    model.embedding.weight.requires_grad = False
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = nn.CrossEntropyLoss(reduction="none")
    tic = time.perf_counter()
    model.train()
    for _ in range(args.sentiment_epochs):
        for X, y in train_iter:
            optimizer.zero_grad()
            loss(model(X), y).sum().backward()
            optimizer.step()
    fit_s = time.perf_counter() - tic
    return {"data_s": data_s, "fit_s": fit_s, "model": model, "test_iter": test_iter}


@torch.no_grad()
def test_accuracy(model: nn.Module, batches) -> float:
    """The fraction of the test reviews whose larger score is at the label."""
    model.eval()
    right = count = 0
    for X, y in batches:
        right += int((model(X).argmax(1) == y).sum())
        count += len(y)
    return right / count


def timed_fit(trainer, model, data) -> float:
    """Seconds `trainer.fit(model, data)` takes; what the board prints is swallowed."""
    device = torch.device("cuda" if torch.cuda.is_available() and trainer.num_gpus else "cpu")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sync(device)
        tic = time.perf_counter()
        trainer.fit(model, data)
        sync(device)
        return time.perf_counter() - tic


# --- the figures, measured alike for both ---------------------------------------------------------

@torch.no_grad()
def val_accuracy(model: nn.Module, images: d2lai.FashionMNISTData) -> float:
    """The fraction of the test images whose largest score is at the label."""
    model.eval()
    device = next(model.parameters()).device
    X, y = images.val
    right = 0
    for i in range(0, len(y), 1000):
        scores = model(images.transform(X[i:i + 1000]).to(device))
        right += int((scores.argmax(1).cpu() == y[i:i + 1000]).sum())
    return right / len(y)


@torch.no_grad()
def val_perplexity(model: nn.Module, data) -> float:
    """exp of the mean cross-entropy over every position of the validation windows."""
    model.eval()
    device = next(model.parameters()).device
    lo, hi = data.num_train, data.num_train + data.num_val
    total, count = 0.0, 0
    for i in range(lo, hi, 1024):
        X, Y = data.X[i:min(i + 1024, hi)].to(device), data.Y[i:min(i + 1024, hi)].to(device)
        logits = model(X)  # (N, T, V)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1),
                                       reduction="sum"))
        count += Y.numel()
    return math.exp(total / count)


# --- the data, and the book's way to it -----------------------------------------------------------

def find_fashion(args: argparse.Namespace) -> tuple[Path | None, str]:
    """--data-root, else D2LAI_DATA, when it holds the four uncompressed files (the book's
    torchvision loader wants them); else None: generated data."""
    for root, kind in ((args.data_root, "--data-root"), (os.environ.get("D2LAI_DATA"),
                                                          "D2LAI_DATA")):
        if root:
            raw = Path(root).expanduser() / "FashionMNIST" / "raw"
            if all((raw / name).is_file() for name, _, _ in FASHION_MNIST_FILES):
                return Path(root).expanduser(), kind
            if kind == "--data-root":
                raise SystemExit(f"--data-root {root}: expected the four uncompressed "
                                 f"Fashion-MNIST files in {raw}")
    return None, "generated"


def prepare_data(args: argparse.Namespace, tmp: Path) -> dict:
    """tmp/data holds Fashion-MNIST (linked from the data root, or generated) and a generated
    Time Machine; tmp/run is the folder the book's code runs from."""
    data = tmp / "data"
    data.mkdir()
    (tmp / "run").mkdir()
    root, kind = find_fashion(args)
    if root is None:
        print("no Fashion-MNIST given: generating data of its size", file=sys.stderr)
        write_fake_fashion_mnist(data, num_train=args.num_images, num_val=args.num_images // 6)
    else:
        (data / "FashionMNIST").symlink_to((root / "FashionMNIST").resolve(),
                                          target_is_directory=True)
    write_fake_time_machine(data, num_chars=args.rnn_num_train + args.rnn_num_val + 2000)
    if "sentiment" in args.workloads:
        write_fake_imdb(data, num_train=args.imdb_reviews, num_test=args.imdb_reviews)
        write_fake_embedding(data, "glove.6b.100d")
    return {"root": data, "fashion": kind}


def offline_download(folder: Path, hub: dict):
    """The book's `download(url, folder, sha1_hash)` (a URL or a name in its `hub`), looking
    only in `folder`."""
    def download(url, folder_given=None, sha1_hash=None):
        url = hub[url][0] if url in hub else url
        path = folder / url.rstrip("/").split("/")[-1]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (the benchmark does not download)")
        return str(path)

    return download


def load_book(folder: Path):
    """The book's `d2l.torch`, with its downloads kept to `folder`, or None if not installed."""
    try:
        book = importlib.import_module("d2l.torch")
    except ImportError:
        return None
    book.download = offline_download(folder, book.DATA_HUB)
    return book


@contextlib.contextmanager
def in_folder(path: Path):
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


# --- running and reporting ------------------------------------------------------------------------

def bench(workload: str, libraries: dict, args: argparse.Namespace, tmp: Path,
          images: d2lai.FashionMNISTData) -> dict:
    """Each library `--repeats` times in turn; times and figures of every run."""
    runs = {name: {"fit_s": [], "data_s": [], "figure": []} for name in libraries}
    figure = FIGURES[workload]
    run = {"bn": run_bn, "rnn": run_rnn, "sentiment": run_sentiment}[workload]
    for r in range(args.repeats):
        for name in rotated(list(libraries), r):
            book = name == "d2l"
            folder = (lambda: in_folder(tmp / "run")) if book else contextlib.nullcontext
            out = run(libraries[name], args, folder)
            value = (val_accuracy(out["model"], images) if workload == "bn"
                     else val_perplexity(out["model"], out["data"]) if workload == "rnn"
                     else test_accuracy(out["model"], out["test_iter"]))
            for key in ("fit_s", "data_s"):
                runs[name][key].append(out[key])
            runs[name]["figure"].append(value)
            print(f"{workload:<4} {name:<6} fit {out['fit_s']:7.2f} s   data {out['data_s']:6.2f} s"
                  f"   {figure} {value:.4f}", flush=True)
    result = {name: {"fit_s": r["fit_s"], "fit_s_median": statistics.median(r["fit_s"]),
                     "data_s": r["data_s"], figure: r["figure"],
                     f"{figure}_median": statistics.median(r["figure"])}
              for name, r in runs.items()}
    if "d2l" in result:
        result["ratio_fit_d2l/d2lai"] = (result["d2l"]["fit_s_median"]
                                         / result["d2lai"]["fit_s_median"])
        result["ratio_data_d2l/d2lai"] = (statistics.median(result["d2l"]["data_s"])
                                          / statistics.median(result["d2lai"]["data_s"]))
        result[f"{figure}_difference"] = (result["d2lai"][f"{figure}_median"]
                                          - result["d2l"][f"{figure}_median"])
    return result


def check_targets(results: dict) -> dict:
    held = {}
    bn = results.get("bn", {})
    if "ratio_fit_d2l/d2lai" in bn:
        ratio, diff = bn["ratio_fit_d2l/d2lai"], bn["val_acc_difference"]
        held[f"bn: d2l/d2lai >= {TARGETS['bn']}"] = {"value": ratio,
                                                    "held": ratio >= TARGETS["bn"]}
        held["bn: |accuracy difference| <= 0.02"] = {"value": diff, "held": abs(diff) <= 0.02}
    sentiment = results.get("sentiment", {})
    for part in ("data", "fit"):
        if f"ratio_{part}_d2l/d2lai" in sentiment:
            ratio, target = sentiment[f"ratio_{part}_d2l/d2lai"], TARGETS[f"sentiment {part}"]
            held[f"sentiment: d2l/d2lai {part} >= {target}"] = {"value": ratio,
                                                                "held": ratio >= target}
    return held


def print_table(report: dict) -> None:
    print("\nfit s: median wall time of trainer.fit; data s: building the data module")
    print(f"{'workload':<9}{'library':<8}{'fit s':>8}{'data s':>8}{'figure':>16}")
    for workload, res in report["results"].items():
        figure = FIGURES[workload]
        for name in ("d2l", "d2lai"):
            if name in res:
                r = res[name]
                print(f"{workload:<9}{name:<8}{r['fit_s_median']:>8.2f}"
                      f"{statistics.median(r['data_s']):>8.2f}"
                      f"{figure:>9} {r[f'{figure}_median']:.4f}")
        if "ratio_fit_d2l/d2lai" in res:
            print(f"{'':<9}d2l/d2lai: fit {res['ratio_fit_d2l/d2lai']:.2f}x, data "
                  f"{res['ratio_data_d2l/d2lai']:.2f}x")
    if not report["settings"]["book_installed"]:
        print("\nthe book's d2l is not installed: pip install --no-deps d2l==1.0.3")
    print_held("targets", report["targets"], 36)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("edition_speed", __doc__.split("\n")[0])
    p.add_argument("--workloads", default="bn,rnn,sentiment",
                   help="comma-separated: bn,rnn,sentiment")
    p.add_argument("--repeats", type=positive, default=2, help="runs of each library")
    p.add_argument("--rnn-epochs", type=positive, default=5, help="epochs of the RNN model")
    p.add_argument("--rnn-num-train", type=positive, default=10000, help="training windows")
    p.add_argument("--rnn-num-val", type=positive, default=5000, help="validation windows")
    p.add_argument("--sentiment-epochs", type=positive, default=1,
                   help="epochs of the sentiment RNN")
    p.add_argument("--imdb-reviews", type=positive, default=500,
                   help="reviews in each split of the generated IMDb stand-in")
    p.add_argument("--num-images", type=positive, default=60000,
                   help="training images generated when no Fashion-MNIST is given")
    p.add_argument("--threads", type=positive, help="torch threads (default: torch's choice)")
    p.add_argument("--gpu", action="store_true", help="num_gpus=1 for both (needs CUDA)")
    p.add_argument("--no-book", action="store_true", help="run the d2lai side only")
    p.add_argument("--data-root", help="folder holding FashionMNIST/raw/ (else $D2LAI_DATA, "
                                       "else generated data)")
    add_json(p, "edition_speed")
    return parse(p, argv, "--workloads", WORKLOADS)


def main(argv: list[str] | None = None) -> dict:
    """Run every workload with both libraries, print the table, write the JSON."""
    args = parse_args(argv)
    device = setup(args)
    saved_root = os.environ.get("D2LAI_DATA")
    with tempfile.TemporaryDirectory(prefix="d2lai-edition-bench-") as tmp:
        tmp = Path(tmp)
        data = prepare_data(args, tmp)
        os.environ["D2LAI_DATA"] = str(data["root"])  # the edition's code names no folder
        try:
            from d2lai import torch as ours

            libraries = {"d2lai": ours}
            book = None if args.no_book else load_book(data["root"])
            if book is not None:
                libraries = {"d2l": book, "d2lai": ours}
            images = d2lai.FashionMNISTData(batchsize=1000, root=data["root"])
            report = {"machine": machine(device),
                      "settings": {"repeats": args.repeats, "rnn_epochs": args.rnn_epochs,
                                   "rnn_num_train": args.rnn_num_train,
                                   "rnn_num_val": args.rnn_num_val, "fashion": data["fashion"],
                                   "sentiment_epochs": args.sentiment_epochs,
                                   "imdb_reviews": args.imdb_reviews,
                                   "num_images": len(images.train[1]),
                                   "text": "generated", "gpu": args.gpu,
                                   "book_installed": book is not None,
                                   "book_version": getattr(sys.modules.get("d2l"), "__version__",
                                                           None)}}
            report["results"] = {w: bench(w, libraries, args, tmp, images)
                                 for w in args.workloads}
        finally:
            if saved_root is None:
                os.environ.pop("D2LAI_DATA", None)
            else:
                os.environ["D2LAI_DATA"] = saved_root
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["targets"] = check_targets(report["results"])
    return finish(report, print_table, args.json)


if __name__ == "__main__":
    main()
