"""Tests of diffusion_lib.utils: seeding, threads and metric recording."""

import json

import numpy as np
import pytest
import torch

from diffusion_lib.utils import record_metric, set_seed, set_threads


def test_set_seed_reproduces_every_generator():
    g1 = set_seed(3)
    a = (torch.randn(4), np.random.rand(2), torch.randn(2, generator=g1))
    g2 = set_seed(3)
    b = (torch.randn(4), np.random.rand(2), torch.randn(2, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    set_seed(4)
    assert not torch.equal(torch.randn(4), a[0])


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        set_seed(bad)


def test_set_threads_environment_wins(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("DIFFUSION_BOOK_THREADS", raising=False)
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("DIFFUSION_BOOK_THREADS", "2")
        assert set_threads(1) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("DIFFUSION_BOOK_THREADS", "two")
        with pytest.raises(ValueError, match="whole number"):
            set_threads(1)
        monkeypatch.delenv("DIFFUSION_BOOK_THREADS")
        with pytest.raises(ValueError, match=">= 1"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_record_metric_writes_json_lines_only_when_asked(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    monkeypatch.delenv("DIFFUSION_BOOK_METRICS", raising=False)
    record_metric("ignored", 1.0)
    assert not path.exists()
    monkeypatch.setenv("DIFFUSION_BOOK_METRICS", str(path))
    monkeypatch.setenv("DIFFUSION_BOOK_CHAPTER", "ddpm_2d")
    record_metric("W2^2", 0.071, "")
    record_metric("bound", 88.5, "nats", chapter="evaluation")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [
        {"name": "W2^2", "value": 0.071, "unit": "", "chapter": "ddpm_2d"},
        {"name": "bound", "value": 88.5, "unit": "nats", "chapter": "evaluation"},
    ]


def test_checkpoint_dir_defaults_to_the_repository_and_follows_the_environment(tmp_path, monkeypatch):
    from pathlib import Path

    from diffusion_lib.utils import checkpoint_dir

    monkeypatch.delenv("DIFFUSION_BOOK_CHECKPOINTS", raising=False)
    repo_dir = Path(__file__).resolve().parents[1] / "checkpoints"
    assert checkpoint_dir() == repo_dir and (repo_dir / "ddpm_digits.pt").is_file()
    monkeypatch.setenv("DIFFUSION_BOOK_CHECKPOINTS", str(tmp_path))
    assert checkpoint_dir() == tmp_path
