"""Where a run's base model waits for its trainer: the GPU for a process alone where CUDA is, else the CPU."""

import torch

from tuner.distributed import start_device


def test_a_run_alone_starts_on_the_gpu_and_one_of_several_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert start_device() == "cuda"
    monkeypatch.setenv("WORLD_SIZE", "2")  # accelerate launch: the trainer places each process's copy
    assert start_device() == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert start_device() == "cpu"
