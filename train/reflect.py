"""Reflect padding that keeps the input's memory layout (channels_last in, channels_last out).

nn.Conv2d(padding_mode="reflect") pads with F.pad, whose reflection kernel returns an NCHW tensor: on CUDA a
channels_last network pays a layout change to NCHW and back around every padded conv, forward and backward.
Here the padded tensor is allocated in the input's layout and filled by copies (the interior, then the
reflected columns, then the reflected rows from the already padded columns): the same values as F.pad's
reflect, exactly, and autograd sums the reflected gradients back as for any slice copy.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """F.pad(x, (p, p, p, p), mode="reflect") for (N, C, H, W) x, in x's memory format."""
    if p == 0:
        return x
    N, C, H, W = x.shape
    if p >= H or p >= W:
        raise ValueError(f"reflect padding {p} needs a map larger than {p} (got {H}x{W})")
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format
    out = torch.empty(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype, device=x.device, memory_format=fmt)
    out[:, :, p:p + H, p:p + W] = x
    out[:, :, p:p + H, :p] = x[:, :, :, 1:p + 1].flip(-1)
    out[:, :, p:p + H, p + W:] = x[:, :, :, W - p - 1:W - 1].flip(-1)
    out[:, :, :p] = out[:, :, p + 1:2 * p + 1].flip(-2)
    out[:, :, p + H:] = out[:, :, H - 1:H + p - 1].flip(-2)
    return out


class ReflectConv2d(nn.Conv2d):
    """nn.Conv2d with padding_mode="reflect" whose padding keeps channels_last (reflect_pad): the same
    parameters, names, attributes and outputs, so `padding_mode` still reads "reflect" and checkpoints load."""

    def _conv_forward(self, input, weight, bias):
        ph, pw = self.padding
        if ph != pw:  # resnet18's convs pad equally; anything else takes nn.Conv2d's own path
            return super()._conv_forward(input, weight, bias)
        return F.conv2d(reflect_pad(input, ph), weight, bias, self.stride, 0, self.dilation, self.groups)


def keep_layout(conv: nn.Conv2d) -> None:
    """Turn a reflect-padded nn.Conv2d into a ReflectConv2d in place (its class only; no parameter changes)."""
    if conv.padding_mode == "reflect" and type(conv) is nn.Conv2d:
        conv.__class__ = ReflectConv2d
