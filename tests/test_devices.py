"""Device choice: auto, cpu, cuda[:N] and Apple's mps, each a one-line error where it is missing."""

from __future__ import annotations

import pytest
import torch

from ganforge.config import ConfigError, resolve
from ganforge.runtime import pick_device


def test_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_is_accepted_by_the_config_and_refused_where_missing():
    resolve(overrides=["train.device=mps"])  # a valid value
    with pytest.raises(ConfigError, match="MPS backend is not available"):
        pick_device("mps")


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS on this machine")
def test_mps_where_present():
    assert pick_device("mps").type == "mps"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_without_a_gpu():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda:0")


def test_unknown_devices_are_config_errors():
    with pytest.raises(ConfigError, match="train.device"):
        resolve(overrides=["train.device=tpu"])


def test_a_config_mistake_is_reported_before_torch_is_imported():
    """Quick feedback: the CLI checks the config's keys and values before importing the training
    machinery (torch is only imported for names that live in registries)."""
    import subprocess
    import sys
    code = ("import sys, ganforge.cli as c\n"
            "rc = c.main(['train', '--set', 'optim.lr_dd=1e-4'])\n"
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert "did you mean 'lr_d'" in out.stderr
