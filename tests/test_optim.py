"""Optimizers: the registry's multi-tensor kernels compute torch's per-tensor update, and a saved
optimizer state resumes with the kernel of the optimizer it is loaded into."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.config import OptimConfig
from ganforge.optim import OPTIMIZERS, load_optimizer_state, optimizer_kernel

pytestmark = pytest.mark.usefixtures("one_thread")

PER_TENSOR = {"adam": lambda ps, c: torch.optim.Adam(ps, lr=1e-2, betas=tuple(c.betas), weight_decay=c.weight_decay,
                                                     foreach=False),
              "rmsprop": lambda ps, c: torch.optim.RMSprop(ps, lr=1e-2, momentum=c.momentum,
                                                           weight_decay=c.weight_decay, foreach=False),
              "sgd": lambda ps, c: torch.optim.SGD(ps, lr=1e-2, momentum=c.momentum, weight_decay=c.weight_decay,
                                                   foreach=False)}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


def _train(net: nn.Module, opt: torch.optim.Optimizer, steps: int = 20) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        net(torch.randn(8, 5, generator=g)).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(PER_TENSOR))
def test_registered_optimizers_use_a_multi_tensor_kernel_with_the_same_update(name):
    cfg = OptimConfig(name=name, momentum=0.9, weight_decay=1e-3)
    fast_net, ref_net = _net(), _net()
    fast = OPTIMIZERS.get(name)(fast_net.parameters(), 1e-2, cfg)
    group = fast.param_groups[0]
    assert group.get("fused") is True if name == "adam" else group.get("foreach") is True
    _train(fast_net, fast)
    _train(ref_net, PER_TENSOR[name](list(ref_net.parameters()), cfg))
    moved = False
    for a, b, start in zip(fast_net.parameters(), ref_net.parameters(), _net().parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        moved |= not torch.allclose(a, start)
    assert moved, "the optimizers did not change the weights: the comparison is vacuous"


def test_no_multi_tensor_kernel_for_devices_or_dtypes_it_does_not_cover():
    assert optimizer_kernel([]) == {}
    assert optimizer_kernel([nn.Parameter(torch.zeros(2, device="meta"))], fused=True) == {}
    assert optimizer_kernel([nn.Parameter(torch.zeros(2))], fused=True) == {"fused": True}
    assert optimizer_kernel([nn.Parameter(torch.zeros(2))]) == {"foreach": True}


def test_loaded_state_keeps_the_kernel_of_the_optimizer_it_goes_into():
    """A checkpoint written by the per-tensor Adam (an older run, or another device) resumes with
    the fused kernel here, with its moments and step counts."""
    cfg = OptimConfig(name="adam")
    old_net = _net()
    old = PER_TENSOR["adam"](list(old_net.parameters()), cfg)
    _train(old_net, old, steps=3)
    new = OPTIMIZERS.get("adam")(_net().parameters(), 1e-2, cfg)
    load_optimizer_state(new, old.state_dict())
    assert new.param_groups[0]["fused"] is True and not new.param_groups[0]["foreach"]
    for p_new, p_old in zip(new.param_groups[0]["params"], old.param_groups[0]["params"]):
        torch.testing.assert_close(new.state[p_new]["exp_avg"], old.state[p_old]["exp_avg"])
        assert float(new.state[p_new]["step"]) == 3
    # plain load_state_dict would have taken the saved kernel: the helper is what keeps it
    plain = OPTIMIZERS.get("adam")(_net().parameters(), 1e-2, cfg)
    plain.load_state_dict(old.state_dict())
    assert not plain.param_groups[0]["fused"]
