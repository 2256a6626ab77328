"""Per-frame features for propagation: a trained encoder (res3, stride 8), a random one, or pooled RGB.

Each featurizer maps a list of uint8 (H,W,3) frames to L2-normalised (N,C,h,w) features on its device.
On the CPU frames go one at a time (oneDNN's results depend on the batch size, and one frame keeps the
memory of a 480p sequence bounded); on a GPU they go in batches.
"""
import numpy as np
import torch
import torch.nn.functional as F

from spixwalk.train.model import NORMS

MEAN, STD = (torch.tensor(v).view(3, 1, 1) for v in NORMS["imagenet"])  # evaluation: ImageNet's, as CRW's


def normalise(frames, device="cpu") -> torch.Tensor:
    """uint8 (H,W,3) RGB frame(s) -> ImageNet-normalised float (N,3,H,W) on device."""
    x = torch.from_numpy(np.stack([np.asarray(f, dtype=np.uint8) for f in frames]) if isinstance(frames, list)
                         else np.array(frames, dtype=np.uint8)[None])
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN.to(x.device)) / STD.to(x.device)


class _Featurizer:
    batch = 1  # frames per forward pass
    padding = None  # conv padding of an encoder's features

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            self.batch = 8
            # fp32 convolutions, not TF32: predictions must match the CPU path
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        """One frame -> (C,h,w)."""
        return self.many([frame])[0]


class EncoderFeatures(_Featurizer):
    """CRW evaluation features: ResNet-18 res3 (layer4 removed) at stride 8, L2-normalised over channels."""

    def __init__(self, ckpt=None, seed=0, device="cpu", padding=None):
        super().__init__(device)
        from spixwalk.train.model import Encoder  # evaluate imports only train's encoder
        from spixwalk.train.weights import WeightsError, load_encoder

        from .davis_io import InputError

        if ckpt:
            try:  # padded as the file says it was trained, else as `padding` says
                self.net = load_encoder(ckpt, drop_layer4=True, default_padding=padding or "zeros")
            except WeightsError as e:
                raise InputError(str(e)) from None
        else:
            torch.manual_seed(seed)
            self.net = Encoder(drop_layer4=True, padding=padding or "zeros")
        self.padding = self.net.padding
        self.net.eval().to(self.device)

    @torch.no_grad()
    def many(self, frames: list) -> torch.Tensor:
        return F.normalize(self.net(normalise(frames, self.device)), dim=1)


class RGBFeatures(_Featurizer):
    """Baseline: normalised RGB averaged over 8x8 cells (same stride 8 grid), L2-normalised."""

    @torch.no_grad()
    def many(self, frames: list) -> torch.Tensor:
        x = F.avg_pool2d(normalise(frames, self.device), 8, 8, ceil_mode=True)
        return F.normalize(x, dim=1)


def make(kind: str, ckpt=None, seed=0, device="cpu", padding=None):
    if kind == "ckpt":
        return EncoderFeatures(ckpt=ckpt, device=device, padding=padding)
    if kind == "random":
        return EncoderFeatures(seed=seed, device=device, padding=padding)
    if kind == "rgb":
        return RGBFeatures(device=device)
    raise ValueError(f"unknown feature kind {kind}")
