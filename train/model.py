"""ResNet-18 encoder at output stride 8 and the 128-d node head.

The encoder is a plain torchvision resnet18 whose layer3 and layer4 run at stride 1, so a 256x256
frame gives a 32x32x512 map. Only strides change: every parameter keeps torchvision's name and
shape, so `encoder.state_dict()` loads into `torchvision.models.resnet18()` (minus `fc`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def _unstride(layer: nn.Sequential) -> None:
    block = layer[0]
    block.conv1.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


class Encoder(nn.Module):
    """ResNet-18 trunk, output stride 8. `drop_layer4=True` gives CRW's evaluation features (res3, 256-d)."""

    def __init__(self, drop_layer4: bool = False):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        _unstride(net.layer3)
        _unstride(net.layer4)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = nn.Identity() if drop_layer4 else net.layer4
        self.out_channels = 256 if drop_layer4 else 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class NodeHead(nn.Module):
    """Linear 512->128 then L2 normalisation, applied to pooled node features (..., 512)."""

    def __init__(self, in_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x), dim=-1)


def encoder_state_from_checkpoint(ckpt: dict) -> dict:
    """The encoder weights of a training checkpoint, with torchvision resnet18 key names."""
    state = ckpt["model"] if "model" in ckpt else ckpt
    prefix = "encoder."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_encoder(path: str, drop_layer4: bool = False, map_location="cpu") -> Encoder:
    """An Encoder with the weights of a spixwalk checkpoint (layer4 weights ignored if dropped)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    state = encoder_state_from_checkpoint(ckpt)
    enc = Encoder(drop_layer4=drop_layer4)
    if drop_layer4:
        state = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    enc.load_state_dict(state, strict=True)
    return enc
