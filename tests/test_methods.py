"""Contract over every registered method, plus golden values for ProtoNet."""

import pytest
import torch
from torch import nn

from fewshot.methods import METHODS
from fewshot.models import ModelSpec, build, load, save


def episode(n_way=3, n_shot=2, n_query=4, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n_way * n_shot, dim, generator=g)
    ys = torch.arange(n_way).repeat_interleave(n_shot)
    xq = torch.randn(n_way * n_query, dim, generator=g)
    return xs, ys, xq


def make(name, seed=0):
    torch.manual_seed(seed)
    return METHODS.create(name, encoder=nn.Sequential(nn.Linear(16, 8)))


@pytest.mark.parametrize("name", METHODS.names())
def test_logits_have_shape_n_query_by_n_way_and_are_finite(name):
    method = make(name)
    xs, ys, xq = episode()
    method.process_support_set(xs, ys)
    logits = method(xq)
    assert logits.shape == (12, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", METHODS.names())
def test_same_seed_same_logits(name):
    xs, ys, xq = episode()
    outs = []
    for _ in range(2):
        method = make(name, seed=3)
        method.process_support_set(xs, ys)
        outs.append(method(xq))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name", METHODS.names())
def test_gradients_reach_the_trainable_encoder(name):
    method = make(name)
    xs, ys, xq = episode()
    method.process_support_set(xs, ys)
    nn.functional.cross_entropy(method(xq), torch.arange(3).repeat_interleave(4)).backward()
    grads = [p.grad for p in method.encoder.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_protonet_golden_logits_with_identity_encoder():
    method = METHODS.create("protonet", encoder=nn.Identity())
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    method.process_support_set(support, torch.tensor([0, 0, 1]))  # prototypes (1,0) and (0,4)
    logits = method(torch.tensor([[1.0, 1.0]]))
    # squared distances 1 and 10, divided by D=2, scale exp(0)=1
    assert torch.allclose(logits, torch.tensor([[-0.5, -5.0]]))


def test_protonet_forward_before_support_is_an_error():
    with pytest.raises(RuntimeError, match="process_support_set"):
        METHODS.create("protonet", encoder=nn.Identity())(torch.zeros(1, 2))


def test_checkpoint_round_trip_keeps_logits_and_leaves_frozen_backbone_out(tmp_path):
    spec = ModelSpec("protonet", "efficientnet_lite0", head_dim=8)
    method, pretrained = build(spec, on_features=True)
    save(tmp_path / "m.pt", method, spec, pretrained, {"episodes_hash": "abc"})
    saved = torch.load(tmp_path / "m.pt")
    assert not any(k.startswith("encoder.backbone.") for k in saved["state"])
    again, info = load(tmp_path / "m.pt", on_features=True)
    xs, ys, xq = torch.randn(4, 1280), torch.tensor([0, 0, 1, 1]), torch.randn(3, 1280)
    method.eval()
    method.process_support_set(xs, ys)
    again.process_support_set(xs, ys)
    assert torch.allclose(method(xq), again(xq)) and info["episodes_hash"] == "abc"
    from_pixels, _ = load(tmp_path / "m.pt", on_features=False)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    from_pixels.process_support_set(images, ys)
    assert from_pixels(images[:2]).shape == (2, 2)
