"""Weight files (`evaluate --ckpt`, `train --init-from`): what they are, and a ResNet-18 encoder built from
them, or one line saying why not.

Accepted: a spixwalk training checkpoint ({"model": {"encoder.*": ...}, "config": ...}); a videowalk (CRW)
training checkpoint as its train.py saves it, CRW's released pretrained.pth among them ({"model":
{"encoder.model.*": ...}, "args": Namespace(model_type=...), "optimizer": ...}; layer4 may be absent:
CRW removes it by default); a plain torchvision / timm resnet18 state dict (ImageNet or any other
ResNet-18 weights; `fc.*` is ignored), also wrapped as {"state_dict": ...} / {"model": ...} or with a
DataParallel "module." prefix; and the encoder file of `python -m train export` (torchvision names
under "state_dict", its padding in "config").

This is the one reader of weight files: `read` (a checkpoint's sha256 sidecar checked, train/digest.py),
`config_of` (the training options a file holds) and `recorded_padding` (the conv padding it records);
train/checkpoints.py, the writer and resumer of training checkpoints, reads through it.
"""
import re
from pathlib import Path

import torch

from . import digest


class WeightsError(Exception):
    """A weight file that cannot give a ResNet-18 encoder: one line naming the file and the reason."""


EXPORT_FORMAT = "spixwalk-encoder"  # meta.format of `python -m train export` files (train/export.py)

# blocks per stage of the torchvision ResNets, BasicBlock (conv1, conv2) vs Bottleneck (+ conv3)
ARCHS = {("basic", (2, 2, 2, 2)): "resnet18", ("basic", (3, 4, 6, 3)): "resnet34",
         ("bottleneck", (3, 4, 6, 3)): "resnet50", ("bottleneck", (3, 4, 23, 3)): "resnet101",
         ("bottleneck", (3, 8, 36, 3)): "resnet152"}


def read(path) -> object:
    path = Path(path)
    if path.is_dir():
        hint = f"; its checkpoint is {path / 'checkpoint.pt'}" if (path / "checkpoint.pt").is_file() else ""
        raise WeightsError(f"{path}: a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found")
    try:
        digest.check(path)
    except digest.Damaged as e:
        raise WeightsError(str(e)) from None
    try:
        # full unpickling: spixwalk checkpoints hold numpy RNG states; --ckpt is the user's own file
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch.load raises many types for non-checkpoint bytes
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise WeightsError(f"{path}: unreadable, not a PyTorch checkpoint ({type(e).__name__}: {first})") from None


# (key prefix of the encoder, kind), most specific first: videowalk's CRW wraps the ResNet in From3D (.model)
PREFIXES = (("module.encoder.model.", "videowalk"), ("encoder.model.", "videowalk"), ("module.encoder.", "spixwalk"),
            ("encoder.", "spixwalk"), ("module.", "torchvision"), ("", "torchvision"))
# videowalk --model-type -> conv padding of its ResNet (utils.make_encoder); other types record none we use
VIDEOWALK_PADDING = {"scratch": "reflect", "scratch_zeropad": "zeros", "imagenet18": "zeros"}


def config_of(obj: dict) -> dict:
    """The training options stored with the weights ({} for files without them)."""
    return obj.get("config") if isinstance(obj.get("config"), dict) else {}


def _tensors(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def resnet_state(obj, path) -> tuple[dict, dict, str]:
    """(state dict with torchvision resnet names, training config, kind) of a loaded checkpoint."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: not a spixwalk or torchvision checkpoint (holds a {type(obj).__name__}, "
                         f"expected a dict of weights)")
    config = config_of(obj)
    state = next((obj[k] for k in ("model", "state_dict") if _tensors(obj.get(k))), obj)
    if not _tensors(state):
        raise WeightsError(f"{path}: not a spixwalk or torchvision checkpoint (no tensor weights under "
                         f"'model' or 'state_dict'; keys: {', '.join(map(str, list(obj)[:6]))})")
    for prefix, kind in PREFIXES:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if kind == "videowalk":  # its early reflect-padded convs were (ReflectionPad2d, Conv2d) pairs
            sub = {re.sub(r"(conv[12])\.1\.weight$", r"\1.weight", k): v for k, v in sub.items()}
        if "conv1.weight" in sub and any(k.startswith("layer1.") for k in sub):
            meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
            return sub, config, "spixwalk-export" if meta.get("format") == EXPORT_FORMAT else kind
    raise WeightsError(f"{path}: not a ResNet checkpoint (no conv1/layer1 weights; keys such as "
                     f"{', '.join(list(state)[:3])})")


def architecture(state: dict) -> str:
    """resnet18/34/50/101/152 from the block structure, else a short description."""
    block = "bottleneck" if any(re.match(r"layer\d\.\d+\.conv3\.", k) for k in state) else "basic"
    counts = tuple(len({m.group(1) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))})
                   for i in range(1, 5))
    if counts[3] == 0:  # layer4 removed (CRW's default): the first three stages name the architecture
        arch = next((a for (b, c), a in ARCHS.items() if b == block and c[:3] == counts[:3]), None)
        if arch:
            return arch
    return ARCHS.get((block, counts), f"ResNet-like ({block} blocks {'/'.join(map(str, counts))})")


def recorded_padding(obj) -> tuple[str | None, str]:
    """(conv padding the file says its weights were trained with, where it says so), or (None, "")."""
    if not isinstance(obj, dict):
        return None, ""
    # config first; checkpoints written before the padding lived there, and export files, hold it at the top
    padding = config_of(obj).get("padding") or obj.get("padding")
    if padding:
        return padding, "padding"
    args = obj.get("args")
    model_type = args.get("model_type") if isinstance(args, dict) else getattr(args, "model_type", None)
    if model_type in VIDEOWALK_PADDING:
        return VIDEOWALK_PADDING[model_type], f"args.model_type {model_type}"
    return None, ""


def encoder_from_state(state: dict, padding: str = "zeros", drop_layer4: bool = False, path="weights"):
    """train.model.Encoder with these torchvision-named weights, strict names and shapes; `fc` (and layer4
    when dropped) ignored."""
    from .model import Encoder

    arch = architecture(state)
    if arch != "resnet18":
        raise WeightsError(f"{path}: {arch} weights: expected a ResNet-18 encoder")
    enc = Encoder(drop_layer4=drop_layer4, padding=padding)
    want = enc.state_dict()
    state = {k: v for k, v in state.items() if k in want or not k.startswith(("layer4.", "fc."))}
    for k in want:  # weights saved before torch 0.4.1 lack the BatchNorm counters; they do not affect eval
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = want[k]
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    bad = [k for k in want if k in state and state[k].shape != want[k].shape]
    if missing and all(k.startswith("layer4.") for k in missing):
        raise WeightsError(f"{path}: no layer4 weights (videowalk removes layer4 by default); only evaluation, "
                           f"which drops layer4, can use this file")
    if missing or unexpected or bad:
        what = (f"shape of {bad[0]} is {tuple(state[bad[0]].shape)}, expected {tuple(want[bad[0]].shape)}" if bad
                else f"missing {len(missing)} weights (e.g. {missing[0]})" if missing
                else f"unexpected weights (e.g. {unexpected[0]})")
        raise WeightsError(f"{path}: not a ResNet-18 encoder: {what}")
    enc.load_state_dict(state, strict=True)
    return enc


def load_encoder(path, drop_layer4: bool = False, padding: str | None = None, default_padding: str = "zeros"):
    """The encoder of a weight file, padded as the file says it was trained (else `default_padding`) unless
    `padding` forces one; `encoder.padding` is the one used. Every failure is a WeightsError naming the
    file and why."""
    obj = read(path)
    state, _, _ = resnet_state(obj, path)
    return encoder_from_state(state, padding or recorded_padding(obj)[0] or default_padding, drop_layer4, path)


def init_from(encoder, path) -> tuple[str, str | None]:
    """Load encoder weights only (--init-from) from a spixwalk checkpoint / export, a videowalk (CRW)
    checkpoint or a torchvision / timm resnet18 state dict.

    Strict: every encoder weight must be there with its shape (torchvision's `fc` is ignored). Raises
    WeightsError with one line naming the file and the first mismatch. Returns the kind and the padding
    the file records (None where it records none); the encoder keeps its own padding.
    """
    obj = read(path)
    state, _, kind = resnet_state(obj, path)
    drop = not any(k.startswith("layer4.") for k in encoder.state_dict())
    loaded = encoder_from_state(state, drop_layer4=drop, path=path)  # only its weights are copied
    encoder.load_state_dict(loaded.state_dict(), strict=True)
    return kind, recorded_padding(obj)[0]
