"""benchmarks/speed.py's FLOP counting: the taps that hit real input, checked by brute force
(an all-ones convolution without bias sums exactly those taps), the all-tap convention against
torch's FLOP counter, and the recorder against a hand count for a tiny net and its backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.speed import conv_flops, record, taps_1d

CASES = [  # (c_in, c_out, kernel, stride, padding, input size, transposed): DCGAN's layers and odd ones
    (1, 4, 4, 2, 1, 28, False), (4, 8, 4, 2, 1, 14, False), (8, 1, 7, 1, 0, 7, False),
    (6, 8, 7, 1, 0, 1, True), (8, 4, 4, 2, 1, 7, True), (4, 1, 4, 2, 1, 14, True),
    (3, 5, 3, 1, 1, 9, False), (3, 5, 3, 2, 1, 8, True), (2, 3, 5, 1, 3, 4, False)]


def test_taps_1d_by_hand():
    # 4 outputs of a k=4, s=2, p=1 conv over 8 inputs: the first and last output lose one tap each
    assert taps_1d(8, 4, 4, 2, 1, 1) == 4 * 4 - 2
    assert taps_1d(5, 5, 3, 1, 1, 1) == 15 - 2
    assert taps_1d(7, 1, 7, 1, 0, 1) == 7


@pytest.mark.parametrize("cin,cout,k,s,p,h,transposed", CASES)
def test_useful_flops_are_the_taps_on_real_input(cin, cout, k, s, p, h, transposed):
    x = torch.ones(2, cin, h, h)
    w = torch.ones((cin, cout, k, k) if transposed else (cout, cin, k, k))
    conv = F.conv_transpose2d if transposed else F.conv2d
    with FlopCounterMode(display=False) as fc:
        y = conv(x, w, stride=s, padding=p)
    useful, all_taps = conv_flops(x.shape, w.shape, y.shape, [s, s], [p, p], [1, 1], transposed)
    assert useful == 2 * int(y.sum())  # each output sums one product per tap on real input
    assert all_taps == fc.get_total_flops()
    assert useful <= all_taps


def test_recorded_ops_of_a_forward_and_backward():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 4, 2, 1, bias=False)
    x = torch.randn(5, 2, 8, 8, requires_grad=True)
    useful, _ = conv_flops(x.shape, conv.weight.shape, (5, 3, 4, 4), [2, 2], [1, 1], [1, 1], False)
    ops = record(lambda: conv(x).square().sum().backward())
    assert [op["kind"] for op in ops] == ["conv", "conv_backward"]
    assert ops[0]["useful"] == useful and ops[1]["useful"] == 2 * useful  # input and weight gradients
    x.requires_grad_(False)
    ops = record(lambda: conv(x).square().sum().backward())
    assert ops[1]["useful"] == useful  # the weight gradient only
