"""The hyperparameter-optimisation chapter's names: searchers suggest configurations, schedulers
decide which to train and for how long (random search, successive halving), `HPOTuner` runs the
trials and keeps the best.

Each trial is a record of a d2lai `RunTable` (`tuner.table`: the configuration, the validation
error, the seconds, a status). With `HPOTuner(..., out=folder)` the table is written to
folder/trials.json and trials.csv after every trial; a tuner started again on the same folder
replays the finished trials through its scheduler (the objective is not called again), so that
the scheduler's decisions, the incumbent and its trajectory are those of an uninterrupted search,
and goes on from there.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict

import numpy as np
import torch

from ..checks import is_real, positive_int
from ..distributed import is_main_process, say
from ..files import check_output_path, claim
from ..runs import RunTable
from .data import FashionMNIST
from .models import HyperParameters, LeNet, Trainer, init_cnn

__all__ = ["rbfkernel", "HPOTrainer", "HPOSearcher", "RandomSearcher", "HPOScheduler",
           "BasicScheduler", "HPOTuner", "hpo_objective_lenet", "SuccessiveHalvingScheduler"]

TRIAL_COLUMNS = ("run", "trial", "error", "runtime", "status")


def rbfkernel(x1, x2, ls=4.):
    """The RBF kernel of the Gaussian-process chapter between the points of two 1-d arrays:
    K[i, j] = exp(-(x1[i] - x2[j])**2 / (2 * ls)), `ls` dividing the squared distance as the
    edition writes it. A numpy array, len(x1) x len(x2)."""
    x1, x2 = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
              for x in (x1, x2))
    if x1.ndim != 1 or x2.ndim != 1:
        raise ValueError(f"rbfkernel takes two 1-d arrays of points, got shapes {x1.shape} and "
                         f"{x2.shape}")
    return np.exp(-(1.0 / ls / 2) * (x1[:, None] - x2[None, :]) ** 2)


class HPOTrainer(Trainer):
    """The edition's `Trainer` with `validation_error()`: 1 - the validation accuracy of the
    fitted model, over the whole validation set (the fit's last metrics, not a second pass).

    A fit cut short by Ctrl-C raises KeyboardInterrupt once it has ended cleanly, so that a
    tuner does not take a half-trained model's error for the trial's."""

    def fit(self, model, data) -> None:
        super().fit(model, data)
        if self.metrics.interrupted:
            raise KeyboardInterrupt("the trial was interrupted: its error is not recorded")

    def validation_error(self) -> torch.Tensor:
        metrics = getattr(self, "metrics", None)
        if metrics is None:
            raise RuntimeError("validation_error: fit a model first (trainer.fit(model, data))")
        if metrics.val_acc is None:
            raise ValueError(f"validation_error: {type(self.model).__name__} reports no "
                             f"validation accuracy (derive it from d2l.Classifier)")
        return torch.tensor(1.0 - metrics.val_acc, dtype=torch.float32)


# --- searchers ----------------------------------------------------------------------------------

def _sample(name: str, domain):
    """One value of a configuration space's entry: `domain.rvs()` (a scipy.stats distribution)
    or a random element of a list."""
    if callable(getattr(domain, "rvs", None)):
        return domain.rvs()
    if isinstance(domain, (list, tuple)) and domain:
        return random.choice(domain)
    raise TypeError(f"config_space[{name!r}] must be a distribution with rvs(), e.g. "
                    f"scipy.stats.loguniform(1e-4, 1), or a non-empty list of values, got "
                    f"{type(domain).__name__} {domain!r:.60}")


class HPOSearcher(HyperParameters):
    """Suggests configurations (`sample_configuration`) and may learn from their errors
    (`update`)."""

    def sample_configuration(self) -> dict:
        raise NotImplementedError

    def update(self, config: dict, error: float, additional_info=None):
        pass


class RandomSearcher(HPOSearcher):
    """Random search: each configuration drawn independently from `config_space` (name ->
    scipy.stats distribution or list of values); `initial_config` first, if given."""

    def __init__(self, config_space: dict, initial_config=None):
        if not isinstance(config_space, dict) or not config_space:
            raise ValueError(f"config_space must be a non-empty dict of name -> distribution, "
                             f"got {config_space!r:.80}")
        for name, domain in config_space.items():
            if not callable(getattr(domain, "rvs", None)) and not (
                    isinstance(domain, (list, tuple)) and domain):
                _sample(name, domain)  # says what is wrong
        if initial_config is not None and (not isinstance(initial_config, dict)
                                           or set(initial_config) != set(config_space)):
            raise ValueError(f"initial_config must give a value to each of "
                             f"{', '.join(config_space)}, got {initial_config!r}")
        self.save_hyperparameters()

    def sample_configuration(self) -> dict:
        if self.initial_config is not None:
            result, self.initial_config = dict(self.initial_config), None
            return result
        return {name: _sample(name, domain) for name, domain in self.config_space.items()}


# --- schedulers ---------------------------------------------------------------------------------

class HPOScheduler(HyperParameters):
    """Decides which configuration to evaluate next (`suggest`) from the errors seen
    (`update`)."""

    def suggest(self) -> dict:
        raise NotImplementedError

    def update(self, config: dict, error: float, info=None):
        raise NotImplementedError


class BasicScheduler(HPOScheduler):
    """Every configuration the searcher suggests, trained as the objective trains it."""

    def __init__(self, searcher: HPOSearcher):
        self.save_hyperparameters()

    def suggest(self) -> dict:
        return self.searcher.sample_configuration()

    def update(self, config: dict, error: float, info=None):
        self.searcher.update(config, error, additional_info=info)


class SuccessiveHalvingScheduler(HPOScheduler):
    """Successive halving: start `prefact * eta**K` configurations with `r_min` epochs, promote
    the best 1/eta of each rung to the next (r_min * eta**k epochs, the last rung `r_max`), and
    begin a new round when the queue is empty. Configurations carry their epochs as
    `max_epochs`. A diverged trial's error is inf: it is never promoted."""

    def __init__(self, searcher, eta, r_min, r_max, prefact=1):
        eta, r_min = positive_int("eta", eta), positive_int("r_min", r_min)
        r_max, prefact = positive_int("r_max", r_max), positive_int("prefact", prefact)
        if eta < 2:
            raise ValueError(f"eta must be an integer >= 2 (the rungs grow by it), got {eta}")
        if r_max <= r_min:
            raise ValueError(f"r_max must be larger than r_min, got r_min={r_min}, "
                             f"r_max={r_max}")
        self.save_hyperparameters()
        # K + 1 rungs r_min * eta**k up to r_max (r_max added as the last one if not one of them)
        self.K = int(np.log(r_max / r_min) / np.log(eta))
        self.rung_levels = [r_min * eta ** k for k in range(self.K + 1)]
        if r_max not in self.rung_levels:
            self.rung_levels.append(r_max)
            self.K += 1
        self.observed_error_at_rungs = defaultdict(list)  # this round's, until promoted
        self.all_observed_error_at_rungs = defaultdict(list)
        self.queue = []  # popped from the end; promotions go in front

    def suggest(self) -> dict:
        if not self.queue:  # a new round: n0 fresh configurations at r_min
            for _ in range(int(self.prefact * self.eta ** self.K)):
                config = self.searcher.sample_configuration()
                config["max_epochs"] = self.r_min
                self.queue.append(config)
        return self.queue.pop()

    def update(self, config: dict, error: float, info=None):
        ri = int(config["max_epochs"])
        if ri not in self.rung_levels:
            raise ValueError(f"update: max_epochs={ri} is none of the rungs "
                             f"{self.rung_levels}")
        self.searcher.update(config, error, additional_info=info)
        self.all_observed_error_at_rungs[ri].append((config, error))
        if ri < self.r_max:
            self.observed_error_at_rungs[ri].append((config, error))
            ki = self.K - self.rung_levels.index(ri)
            if len(self.observed_error_at_rungs[ri]) >= int(self.prefact * self.eta ** ki):
                best = self.get_top_n_configurations(
                    rung_level=ri, n=int(self.prefact * self.eta ** (ki - 1)))
                riplus1 = self.rung_levels[self.K - ki + 1]
                self.queue = [dict(c, max_epochs=riplus1) for c in best] + self.queue
                self.observed_error_at_rungs[ri] = []

    def get_top_n_configurations(self, rung_level, n):
        """The `n` configurations of this round's rung `rung_level` with the lowest errors
        (the earlier first on ties)."""
        rung = sorted(self.observed_error_at_rungs[rung_level], key=lambda x: x[1])
        return [config for config, _ in rung[:n]]


# --- the tuner ----------------------------------------------------------------------------------

def _plain(value):
    """A configuration's value as JSON keeps it: numpy scalars as Python numbers."""
    return value.item() if isinstance(value, np.generic) else value


def _check_config(config) -> None:
    if not isinstance(config, dict):
        raise TypeError(f"the scheduler suggested {type(config).__name__} {config!r:.60}, not a "
                        f"dict of hyperparameter values")
    clash = sorted(set(config) & set(TRIAL_COLUMNS))
    if clash:
        raise ValueError(f"a configuration may not name {clash[0]!r}: the trials' table has a "
                         f"column of that name")


def _error(value) -> float:
    """An objective's result (a number, a one-element tensor or array) as a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"the objective must return one number (the validation error), "
                             f"got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().cpu())
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value)
    if is_real(value):
        return float(value)
    raise TypeError(f"the objective must return the validation error (a number), got "
                    f"{type(value).__name__} {value!r:.60}")


class HPOTuner(HyperParameters):
    """Runs trials: `run(number_of_trials)` asks the scheduler for a configuration, calls
    `objective(**config)` for its validation error, tells the scheduler, and keeps the best
    (`incumbent`, `incumbent_error`, `incumbent_trajectory` against `cumulative_runtime`).

    `tuner.table` is a `RunTable` of the trials. With `out`, it is saved to out/trials.json and
    out/trials.csv after every trial, and a tuner on the same `out` replays the trials found
    there before it trains new ones (`restart=True` starts over): `run(30)` in a script started
    again after trial 12 trains trials 13 to 30.
    """

    def __init__(self, scheduler: HPOScheduler, objective: callable, *,
                 out: str | os.PathLike | None = None, restart: bool = False):
        if not callable(getattr(scheduler, "suggest", None)) \
                or not callable(getattr(scheduler, "update", None)):
            raise TypeError(f"scheduler must have suggest() and update() (a d2l.HPOScheduler), "
                            f"got {type(scheduler).__name__}")
        if not callable(objective):
            raise TypeError(f"objective must be a function of a configuration's values that "
                            f"returns its validation error, got {type(objective).__name__}")
        self.save_hyperparameters(ignore=["out", "restart"])
        self.incumbent = None
        self.incumbent_error = None
        self.incumbent_trajectory = []
        self.cumulative_runtime = []
        self.current_runtime = 0
        self.records = []
        self.trials: list[dict] = []  # the table's records
        self.out, self._restart, self._pending = None, restart, None
        if out is not None:
            self.out = check_output_path(out, "out", folder=True)

    @property
    def table(self) -> RunTable:
        """The trials so far, one record each: run, trial, the configuration, error, runtime
        and status (`ok`, or `diverged` for an error that is not a finite number)."""
        return RunTable(self.trials)

    def run(self, number_of_trials):
        """Run `number_of_trials` more trials (the first ones replayed from `out` if saved
        there), printing each configuration and its error."""
        number_of_trials = positive_int("number_of_trials", number_of_trials)
        lock = claim(self.out, "out", "tuner", folder=True) \
            if self.out is not None and is_main_process() else None
        try:
            if self._pending is None:  # the first run: the trials saved in out, if any
                self._pending = self._saved()
            if self._pending:
                say(f"replaying {min(len(self._pending), number_of_trials)} trials finished in "
                    f"{self.out} (restart=True starts over)")
            for _ in range(number_of_trials):
                if self._pending:
                    self._replay(self._pending.pop(0))
                    continue
                i = len(self.trials)
                start_time = time.time()
                config = self.scheduler.suggest()
                _check_config(config)
                say(f"Trial {i}: config = {config}")
                error = _error(self.objective(**config))
                runtime = time.time() - start_time
                self._record(config, error, runtime)
                say(f"    error = {error}, runtime = {runtime}")
        finally:
            if lock is not None:
                lock.release()

    def _saved(self) -> list[dict]:
        """The trials an earlier tuner saved in `out` (none with restart=True, which removes
        them; called while this tuner holds `out`)."""
        if self.out is None:
            return []
        if self._restart:
            if is_main_process():
                for name in ("trials.json", "trials.csv"):
                    (self.out / name).unlink(missing_ok=True)
            return []
        saved = self.out / "trials.json"
        return RunTable.from_json(saved).records if saved.exists() else []

    def _record(self, config: dict, error: float, runtime: float) -> None:
        """Tell the scheduler (a non-finite error as inf), keep the books, save the table."""
        finite = math.isfinite(error)
        self.scheduler.update(config, error if finite else math.inf)
        self.bookkeeping(config, error if finite else math.inf, runtime)
        i = len(self.trials)
        self.trials.append({"run": f"trial {i}", "trial": i,
                            **{k: _plain(v) for k, v in config.items()},
                            "error": error if finite else None, "runtime": runtime,
                            "status": "ok" if finite else "diverged"})
        if self.out is not None and is_main_process():
            try:
                self.table.to_json(self.out / "trials.json")
                self.table.to_csv(self.out / "trials.csv")
            except OSError as err:
                say(f"could not write the trials to {self.out} ({err}): the search goes on; "
                    f"tuner.table holds them")

    def _replay(self, record: dict) -> None:
        """A finished trial, as if it ran now: the scheduler suggests (and samples) as it did,
        and is told the recorded configuration and error."""
        i = len(self.trials)
        config = {k: v for k, v in record.items() if k not in TRIAL_COLUMNS}
        suggested = self.scheduler.suggest()
        if set(suggested) != set(config) or \
                suggested.get("max_epochs") != config.get("max_epochs"):
            raise ValueError(f"{self.out}/trials.json holds another search: its trial {i} was "
                             f"{config}, this scheduler suggests {suggested}. Use another out, "
                             f"or restart=True to start over")
        error = math.nan if record.get("error") is None else float(record["error"])
        self._record(config, error, float(record.get("runtime") or 0.0))

    def bookkeeping(self, config: dict, error: float, runtime: float):
        """Record a trial and update the incumbent, its trajectory and the cumulative
        runtime."""
        self.records.append({"config": config, "error": error, "runtime": runtime})
        if self.incumbent is None or self.incumbent_error > error:
            self.incumbent = config
            self.incumbent_error = error
        self.incumbent_trajectory.append(self.incumbent_error)
        self.current_runtime += runtime
        self.cumulative_runtime.append(self.current_runtime)


def hpo_objective_lenet(learning_rate, batch_size, max_epochs=10):
    """Train the edition's LeNet on Fashion-MNIST with this learning rate and batch size; its
    validation error. On the GPU when there is one."""
    model = LeNet(lr=learning_rate, num_classes=10)
    trainer = HPOTrainer(max_epochs=max_epochs, num_gpus=min(1, torch.cuda.device_count()))
    data = FashionMNIST(batch_size=batch_size)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
    trainer.fit(model=model, data=data)
    return trainer.validation_error()

