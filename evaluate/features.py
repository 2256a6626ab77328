"""Per-frame features for propagation: a trained encoder (res3, stride 8), a random one, or pooled RGB."""
import numpy as np
import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def normalise(frame: np.ndarray) -> torch.Tensor:
    """uint8 (H,W,3) RGB -> ImageNet-normalised float (1,3,H,W)."""
    x = torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    return ((x - MEAN) / STD)[None]


class EncoderFeatures:
    """CRW evaluation features: ResNet-18 res3 (layer4 removed) at stride 8, L2-normalised over channels."""

    def __init__(self, ckpt=None, seed=0):
        from train.model import Encoder  # evaluate imports only train's encoder

        from .checkpoint import load_encoder

        if ckpt:
            self.net = load_encoder(ckpt, drop_layer4=True)
        else:
            torch.manual_seed(seed)
            self.net = Encoder(drop_layer4=True)
        self.net.eval()

    @torch.no_grad()
    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return F.normalize(self.net(normalise(frame))[0], dim=0)


class RGBFeatures:
    """Baseline: normalised RGB averaged over 8x8 cells (same stride 8 grid), L2-normalised."""

    @torch.no_grad()
    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        x = F.avg_pool2d(normalise(frame), 8, 8, ceil_mode=True)
        return F.normalize(x[0], dim=0)


def make(kind: str, ckpt=None, seed=0):
    if kind == "ckpt":
        return EncoderFeatures(ckpt=ckpt)
    if kind == "random":
        return EncoderFeatures(seed=seed)
    if kind == "rgb":
        return RGBFeatures()
    raise ValueError(f"unknown feature kind {kind}")
