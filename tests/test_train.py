import pytest
import torch
from torch import nn

from dlcourse.train import (
    History,
    accuracy,
    benchmark,
    device,
    env_report,
    evaluate,
    fit,
    seed_everything,
)


def test_seed_everything_makes_draws_reproducible():
    seed_everything(3)
    first = torch.randn(4)
    seed_everything(3)
    assert torch.equal(first, torch.randn(4))
    seed_everything(4)
    assert not torch.equal(first, torch.randn(4))


def test_seed_everything_returns_seeded_generator_and_sets_threads():
    g1, g2 = seed_everything(5), seed_everything(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [1.5, "0", True])
def test_seed_everything_rejects_non_int_seed(bad):
    with pytest.raises(TypeError, match="seed"):
        seed_everything(bad)


def test_seed_everything_rejects_bad_thread_count():
    with pytest.raises(ValueError, match="threads"):
        seed_everything(0, threads=0)


def test_device_honours_override(monkeypatch):
    monkeypatch.setenv("DLCOURSE_DEVICE", "cpu")
    assert device() == torch.device("cpu")
    monkeypatch.delenv("DLCOURSE_DEVICE")
    assert device().type in {"cpu", "cuda", "mps"}


def test_env_report_lists_versions():
    report = env_report()
    assert report["torch"] == torch.__version__
    assert {"python", "numpy", "threads", "device"} <= report.keys()


def test_benchmark_returns_median_time_and_checks_arguments():
    calls = []
    seconds = benchmark(lambda: calls.append(1), repeat=3, warmup=2)
    assert len(calls) == 5 and seconds >= 0
    with pytest.raises(ValueError, match="repeat"):
        benchmark(lambda: None, repeat=0)


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="logits"):
        accuracy(logits[0], torch.tensor([0]))


def test_history_logs_and_reads_last():
    history = History()
    history.log(loss=2.0, step=1)
    history.log(loss=1.0, step=2)
    assert history["loss"] == [2.0, 1.0] and history.last("step") == 2.0


def test_fit_learns_a_separable_problem():
    generator = seed_everything(0)
    x = torch.randn(512, 2, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Linear(2, 2)
    history = fit(model, x, y, epochs=5, batch_size=64, lr=0.05, generator=generator,
                  val=(x, y), log_every=8, progress=False)  # fmt: skip
    assert history["loss"][-1] < history["loss"][0]
    assert history.last("val_accuracy") > 0.95
    assert evaluate(model, x, y)["accuracy"] == pytest.approx(history.last("val_accuracy"))


def test_fit_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        fit(nn.Linear(2, 2), torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), progress=False)
