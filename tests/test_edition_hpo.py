"""The hyperparameter-optimisation names: successive halving's rung decisions against a worked
example, random search, the tuner's books, its trials as a RunTable that survives a restart, and
the trainer's validation error against a count of right answers."""

import json
import math

import numpy as np
import pytest
import torch

import d2lai
from d2lai import torch as d2l
from d2lai.testing import write_fake_fashion_mnist


class Counter(d2l.HPOSearcher):
    """Configurations {"id": 0}, {"id": 1}, ... in order."""

    def __init__(self):
        self.next = 0

    def sample_configuration(self):
        self.next += 1
        return {"id": self.next - 1}


# The worked example: eta=2, r_min=2, r_max=10 gives rungs 2, 4, 8, 10 (K=3), so a round starts
# 2**3 = 8 configurations at 2 epochs, promotes the best 4 to 4 epochs, the best 2 of those to
# 8 and the best one to 10. The queue is popped from its end and promotions go in front: ids
# 7..0 at 2 epochs; best four 3 (0.10), 1 (0.20), 5 (0.30), 7 (0.40) queued as [3, 1, 5, 7], so
# run as 7, 5, 1, 3; at 4 epochs 5 (0.05) and 3 (0.12) win, queued [5, 3], run 3 then 5; at 8
# epochs 5 (0.04) beats 3 (0.08) and alone goes on to 10. Then a new round: 15 first.
ERRORS = {2: {0: 0.50, 1: 0.20, 2: 0.80, 3: 0.10, 4: 0.60, 5: 0.30, 6: 0.90, 7: 0.40},
          4: {7: 0.30, 5: 0.05, 1: 0.15, 3: 0.12}, 8: {3: 0.08, 5: 0.04}, 10: {5: 0.03}}
ORDER = [(7, 2), (6, 2), (5, 2), (4, 2), (3, 2), (2, 2), (1, 2), (0, 2),
         (7, 4), (5, 4), (1, 4), (3, 4), (3, 8), (5, 8), (5, 10), (15, 2)]


def objective_of(calls):
    def objective(id, max_epochs):
        calls.append((id, max_epochs))
        return torch.tensor(ERRORS.get(max_epochs, {}).get(id, 0.5 + id / 100))
    return objective


def sh():
    return d2l.SuccessiveHalvingScheduler(Counter(), eta=2, r_min=2, r_max=10)


def test_successive_halving_rungs_and_promotions_follow_the_worked_example(capsys):
    scheduler = sh()
    assert scheduler.rung_levels == [2, 4, 8, 10] and scheduler.K == 3
    three = d2l.SuccessiveHalvingScheduler(Counter(), eta=3, r_min=1, r_max=9)
    assert three.rung_levels == [1, 3, 9] and three.K == 2
    calls = []
    tuner = d2l.HPOTuner(scheduler=scheduler, objective=objective_of(calls))
    tuner.run(number_of_trials=16)
    assert calls == ORDER
    assert [e for _, e in scheduler.all_observed_error_at_rungs[4]] == \
        pytest.approx([0.30, 0.05, 0.15, 0.12])
    assert tuner.incumbent == {"id": 5, "max_epochs": 10}
    assert tuner.incumbent_error == pytest.approx(0.03)
    assert tuner.incumbent_trajectory[:3] == pytest.approx([0.40, 0.40, 0.30])
    assert "Trial 15: config = {'id': 15, 'max_epochs': 2}" in capsys.readouterr().out


def test_successive_halving_refuses_impossible_rungs():
    with pytest.raises(ValueError, match="eta must be an integer >= 2"):
        d2l.SuccessiveHalvingScheduler(Counter(), eta=1, r_min=1, r_max=4)
    with pytest.raises(ValueError, match="r_max must be larger than r_min"):
        d2l.SuccessiveHalvingScheduler(Counter(), eta=2, r_min=4, r_max=4)
    with pytest.raises(ValueError, match="none of the rungs"):
        sh().update({"id": 0, "max_epochs": 3}, 0.1)


def test_a_restarted_tuner_replays_its_trials_and_goes_on_as_one_search(tmp_path, capsys):
    whole = d2l.HPOTuner(sh(), objective_of([]))
    whole.run(16)
    first = d2l.HPOTuner(sh(), objective_of([]), out=tmp_path)
    first.run(10)
    saved = json.loads((tmp_path / "trials.json").read_text())["records"]
    assert [(r["id"], r["max_epochs"]) for r in saved] == ORDER[:10]
    assert (tmp_path / "trials.csv").read_text().startswith("run,trial,id,max_epochs,error,")
    calls = []
    again = d2l.HPOTuner(sh(), objective_of(calls), out=tmp_path)
    again.run(16)
    assert calls == ORDER[10:]  # the first ten are not trained again
    assert "replaying 10 trials" in capsys.readouterr().out
    assert [r["config"] for r in again.records] == [r["config"] for r in whole.records]
    assert again.incumbent_trajectory == pytest.approx(whole.incumbent_trajectory)
    assert again.incumbent == whole.incumbent
    assert d2lai.RunTable.from_json(tmp_path / "trials.json").runs() == \
        [f"trial {i}" for i in range(16)]
    other = d2l.HPOTuner(d2l.SuccessiveHalvingScheduler(Counter(), 2, 1, 10), objective_of([]),
                         out=tmp_path)
    with pytest.raises(ValueError, match="holds another search"):
        other.run(1)
    fresh = d2l.HPOTuner(sh(), objective_of(calls := []), out=tmp_path, restart=True)
    fresh.run(2)
    assert calls == ORDER[:2]


class Fixed:
    """A distribution whose draws are given."""

    def __init__(self, *values):
        self.values = list(values)

    def rvs(self):
        return self.values.pop(0)


def test_random_search_gives_the_initial_config_first_then_draws():
    searcher = d2l.RandomSearcher({"lr": Fixed(0.5, 0.25), "act": ["relu"]},
                                  initial_config={"lr": 0.1, "act": "tanh"})
    assert searcher.sample_configuration() == {"lr": 0.1, "act": "tanh"}
    assert searcher.sample_configuration() == {"lr": 0.5, "act": "relu"}
    assert searcher.sample_configuration() == {"lr": 0.25, "act": "relu"}
    with pytest.raises(TypeError, match=r"config_space\['lr'\] must be a distribution"):
        d2l.RandomSearcher({"lr": 0.1})
    with pytest.raises(ValueError, match="initial_config must give a value to each of lr"):
        d2l.RandomSearcher({"lr": Fixed()}, initial_config={"batch_size": 8})


def test_tuner_books_and_a_diverged_trial(tmp_path):
    errors = iter([0.5, math.nan, 0.2, 0.3])
    scheduler = d2l.BasicScheduler(d2l.RandomSearcher({"lr": Fixed(1.0, 2.0, 3.0, 4.0)}))
    tuner = d2l.HPOTuner(scheduler, lambda lr: next(errors), out=tmp_path / "search")
    tuner.run(number_of_trials=4)
    assert tuner.incumbent_trajectory == [0.5, 0.5, 0.2, 0.2]
    assert tuner.incumbent == {"lr": 3.0}
    assert tuner.cumulative_runtime == sorted(tuner.cumulative_runtime)
    table = tuner.table
    assert [r["status"] for r in table.records] == ["ok", "diverged", "ok", "ok"]
    assert table.records[1]["error"] is None and tuner.records[1]["error"] == math.inf
    assert d2lai.RunTable.from_csv(tmp_path / "search" / "trials.csv").records[2]["lr"] == 3.0
    with pytest.raises(TypeError, match="must return the validation error"):
        d2l.HPOTuner(d2l.BasicScheduler(d2l.RandomSearcher({"lr": [1]})),
                     lambda lr: "low").run(1)
    with pytest.raises(ValueError, match="may not name 'error'"):
        d2l.HPOTuner(d2l.BasicScheduler(d2l.RandomSearcher({"error": [1]})),
                     lambda error: 0.1).run(1)


def test_validation_error_is_one_minus_the_share_of_right_answers(tmp_path, monkeypatch):
    write_fake_fashion_mnist(tmp_path, num_train=256, num_val=100)
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    torch.manual_seed(0)
    data = d2l.FashionMNIST(batch_size=32)
    model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
    trainer = d2l.HPOTrainer(max_epochs=1)
    with pytest.raises(RuntimeError, match="fit a model first"):
        trainer.validation_error()
    trainer.fit(model=model, data=data)
    right = total = 0
    model.eval()
    with torch.no_grad():
        for X, y in data.get_dataloader(False):
            right += (model(X).argmax(1) == y).sum().item()
            total += len(y)
    assert total == 100
    assert trainer.validation_error().item() == pytest.approx(1 - right / total, abs=1e-6)
    error = d2l.hpo_objective_lenet(learning_rate=np.float64(0.1), batch_size=np.int64(64),
                                    max_epochs=1)
    assert error.shape == () and 0 <= error.item() <= 1


def test_an_interrupted_trial_is_not_recorded_and_is_trained_again(tmp_path, monkeypatch):
    write_fake_fashion_mnist(tmp_path / "data", num_train=64, num_val=32)
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path / "data"))
    stop = {"at": None}

    def objective(lr):
        model = d2l.SoftmaxRegression(num_outputs=10, lr=lr)
        step = model.training_step

        def training_step(batch):
            if lr == stop["at"]:
                raise KeyboardInterrupt  # as Ctrl-C during the trial
            return step(batch)

        model.training_step = training_step
        trainer = d2l.HPOTrainer(max_epochs=1)
        trainer.fit(model, d2l.FashionMNIST(batch_size=32))
        return trainer.validation_error()

    def tuner():
        return d2l.HPOTuner(d2l.BasicScheduler(d2l.RandomSearcher({"lr": Fixed(0.1, 0.2)})),
                            objective, out=tmp_path / "out")

    stop["at"] = 0.2
    with pytest.raises(KeyboardInterrupt):
        tuner().run(2)
    table = d2lai.RunTable.from_json(tmp_path / "out" / "trials.json")
    assert [r["lr"] for r in table.records] == [0.1]
    stop["at"] = None
    again = tuner()
    again.run(2)
    assert [r["lr"] for r in again.table.records] == [0.1, 0.2]


def test_a_folder_in_use_by_a_running_tuner_is_refused_and_left_alone(tmp_path):
    d2l.HPOTuner(sh(), objective_of([]), out=tmp_path).run(3)
    other = d2l.HPOTuner(sh(), objective_of([]), out=tmp_path, restart=True)

    def objective(id, max_epochs):
        with pytest.raises(RuntimeError, match="in use by another tuner"):
            other.run(1)
        return 0.5

    d2l.HPOTuner(sh(), objective, out=tmp_path).run(4)
    saved = json.loads((tmp_path / "trials.json").read_text())["records"]
    assert len(saved) == 4  # the other tuner's restart=True removed nothing
