"""Pixel losses (`train.pixel_opt.type`), with BasicSR's names and `loss_weight`."""
import math

import torch
from torch import nn


class PixelLoss(nn.Module):
    """Every loss takes every `LossOpt` field; `eps` is Charbonnier's, `max_psnr` PSNRLoss's."""

    def __init__(self, loss_weight=1.0, reduction="mean", eps=1e-12, max_psnr=80.0):
        super().__init__()
        self.loss_weight, self.reduction, self.eps = loss_weight, reduction, eps
        self.floor = 10.0 ** (-float(max_psnr) / 10.0)  # PSNRLoss: each image's MSE floor

    def reduce(self, x):
        return x.mean() if self.reduction == "mean" else x.sum()


class L1Loss(PixelLoss):
    def forward(self, pred, target):
        return self.loss_weight * self.reduce((pred - target).abs())


class MSELoss(PixelLoss):
    def forward(self, pred, target):
        return self.loss_weight * self.reduce((pred - target).pow(2))


class CharbonnierLoss(PixelLoss):
    """sqrt((x - y)^2 + eps): an L1 that is smooth at 0 (Restormer's deraining loss)."""

    def forward(self, pred, target):
        return self.loss_weight * self.reduce(torch.sqrt((pred - target).pow(2) + self.eps))


class PSNRLoss(PixelLoss):
    """NAFNet's loss: -PSNR averaged over the batch, (10 / ln 10) * mean_b log(MSE_b + floor), with
    floor = 10^(-max_psnr / 10) (NAFNet: 1e-8, i.e. 80 dB).

    Per-image logs weigh every image's error relatively, so easy images still count -- too much when
    some inputs are clean (PROD's p_clean, drop-free crops of a scene view): an image's gradient
    scales as 1 / (MSE + floor), so near-identity outputs of clean inputs outweigh a hazy image
    ~1000x and the network learns to return anything that looks clean untouched. A ceiling of
    ~50 dB keeps them from dominating (our choice; measured in BENCHMARKS.md)."""

    def forward(self, pred, target):
        mse = (pred - target).pow(2).flatten(1).mean(dim=1)
        return self.loss_weight * (10.0 / math.log(10.0)) * torch.log(mse + self.floor).mean()


LOSSES = {cls.__name__: cls for cls in (L1Loss, MSELoss, CharbonnierLoss, PSNRLoss)}


def build_loss(opt):
    """A loss from `train.pixel_opt` (LossOpt or dict)."""
    opt = opt.to_dict() if hasattr(opt, "to_dict") else dict(opt)
    return LOSSES[opt.pop("type")](**opt)
