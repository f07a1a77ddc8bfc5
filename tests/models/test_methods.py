"""Contract over every registered method, plus golden values for each method's own rule."""

import pytest
import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.models.checkpoint import build, load, save
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import Episode, Parts
from fewshot.models.methods.siamese import balanced_pairs
from fewshot.models.methods.zero_shot import symmetric_contrastive
from tests.conftest import repo_params

IN_DIM, FEATURE_DIM, TEXT_DIM, N_IMAGENET = 16, 8, 6, 20


def episode(n_way=3, n_shot=2, n_query=4, seed=0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(support=torch.randn(n_way * n_shot, IN_DIM, generator=g),
                   support_labels=torch.arange(n_way).repeat_interleave(n_shot),
                   query=torch.randn(n_way * n_query, IN_DIM, generator=g),
                   query_labels=torch.arange(n_way).repeat_interleave(n_query),
                   class_text=torch.randn(n_way, TEXT_DIM, generator=g))


def make(name, seed=0, head_dim=4):
    """A method on a small trainable backbone, with a frozen ImageNet-like classifier."""
    torch.manual_seed(seed)
    classifier = nn.Linear(FEATURE_DIM, N_IMAGENET).requires_grad_(False)
    parts = Parts(nn.Linear(IN_DIM, FEATURE_DIM), FEATURE_DIM, head_dim, TEXT_DIM, classifier,
                  torch.randn(N_IMAGENET, TEXT_DIM))
    return METHODS.get(name)(parts, METHODS.get(name).Options())


def logits_of(method, ep):
    method.process_support_set(ep.support, ep.support_labels, ep.class_text)
    return method(ep.query)


@pytest.mark.parametrize("name", METHODS.names())
def test_logits_have_shape_n_query_by_n_way_and_are_finite(name):
    logits = logits_of(make(name), episode())
    assert logits.shape == (12, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", METHODS.names())
def test_same_seed_same_logits_and_loss(name):
    outs = []
    for _ in range(2):
        method = make(name, seed=3)
        torch.manual_seed(5)  # the siamese loss draws its negative pairs
        outs.append((logits_of(method, episode()), method.loss(episode())))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("name", METHODS.names())
def test_gradients_are_bit_identical_across_repeated_backward_passes(name):
    """Regression: siamese gathered pair embeddings by advanced indexing, whose CPU backward
    (index_put_ with accumulate) sums repeated indices in thread order; two trainings from the same
    seed then differed. 8-way, 16 items per class, a 64-d head: ~1,900 pairs, enough for the race
    to show in nearly every pass on two threads."""
    big = episode(n_way=8, n_shot=1, n_query=15, seed=1)
    method = make(name, seed=2, head_dim=64)
    grads = set()
    for _ in range(12):
        method.zero_grad()
        torch.manual_seed(5)
        method.loss(big).backward()
        grads.add(b"".join(p.grad.numpy().tobytes() for p in method.parameters()
                           if p.grad is not None))
    assert len(grads) == 1


@pytest.mark.parametrize("name", METHODS.names())
def test_training_loss_is_finite_and_reaches_every_trainable_part(name):
    method = make(name)
    loss = method.loss(episode())
    loss.backward()
    trainable = {n: p for n, p in method.named_parameters() if p.requires_grad}
    assert torch.isfinite(loss) and trainable
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values()), \
        [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]


@pytest.mark.parametrize("name", METHODS.names())
def test_forward_before_support_is_an_error(name):
    with pytest.raises(RuntimeError, match="process_support_set"):
        make(name)(torch.zeros(1, IN_DIM))


def test_protonet_golden_logits_with_identity_backbone():
    method = METHODS.get("protonet")(Parts(nn.Identity(), 2, 0, TEXT_DIM), METHODS.get("protonet").Options())
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    method.process_support_set(support, torch.tensor([0, 0, 1]), None)  # prototypes (1,0), (0,4)
    # squared distances 1 and 10, divided by D=2, scale exp(0)=1
    assert torch.allclose(method(torch.tensor([[1.0, 1.0]])), torch.tensor([[-0.5, -5.0]]))


def test_siamese_class_score_is_mean_similarity_to_that_class_support_items():
    method = METHODS.get("siamese")(Parts(nn.Identity(), 2, 0, TEXT_DIM), METHODS.get("siamese").Options())
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    method.process_support_set(support, torch.tensor([0, 0, 1]), None)
    logits = method(torch.tensor([[1.0, 0.0]])) / method.log_scale.exp()
    # squared distances to class 0 items: 0 and 2 (mean 1); to class 1: 4
    assert torch.allclose(logits, torch.tensor([[-1.0, -4.0]]))


def test_balanced_pairs_have_as_many_different_as_same_pairs_and_correct_flags():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    first, second, same = balanced_pairs(labels)
    assert int(same.sum()) == 4 and int((~same).sum()) == 4  # 3 + 1 same-class pairs
    assert torch.equal(labels[first] == labels[second], same) and bool((first < second).all())


def test_siamese_rejects_unknown_loss():
    with pytest.raises(UserError, match="siamese loss 'triplet'"):
        METHODS.get("siamese")(Parts(nn.Identity(), 2, 0, TEXT_DIM),
                               METHODS.get("siamese").Options(loss="triplet"))


def test_siamese_binary_pair_head_option_trains():
    options = METHODS.get("siamese").Options(loss="binary")
    torch.manual_seed(0)
    method = METHODS.get("siamese")(Parts(nn.Linear(IN_DIM, FEATURE_DIM), FEATURE_DIM, 4, TEXT_DIM),
                                    options)
    method.loss(episode()).backward()
    assert method.pair_head.weight.grad.abs().sum() > 0
    assert logits_of(method, episode()).shape == (12, 3)


def test_zero_shot_ignores_support_images_and_multimodal_uses_them():
    ep, other = episode(), episode()
    other.support = torch.randn_like(ep.support)
    zero_shot, multimodal = make("zero_shot"), make("multimodal")
    assert torch.equal(logits_of(zero_shot, ep), logits_of(zero_shot, other))
    assert not torch.allclose(logits_of(multimodal, ep), logits_of(multimodal, other))


def test_zero_shot_logits_follow_class_text_order():
    method, ep = make("zero_shot"), episode()
    flipped = Episode(ep.support, ep.support_labels, ep.query, ep.query_labels, ep.class_text.flip(0))
    assert torch.allclose(logits_of(method, ep).flip(1), logits_of(method, flipped))


def test_symmetric_contrastive_is_small_when_images_match_their_texts_and_large_otherwise():
    labels = torch.tensor([0, 0, 1, 2])
    right = 20 * nn.functional.one_hot(labels, 3).float()
    wrong = 20 * nn.functional.one_hot((labels + 1) % 3, 3).float()
    assert symmetric_contrastive(right, labels) < 0.8 < 10 < symmetric_contrastive(wrong, labels)


def test_conse_picks_the_class_whose_text_matches_the_predicted_imagenet_label():
    texts = torch.eye(4)  # ImageNet label j has text e_j
    classifier = nn.Linear(4, 4, bias=False)
    classifier.weight.data = 10 * torch.eye(4)  # feature e_j -> ImageNet label j
    cls = METHODS.get("conse")
    method = cls(Parts(nn.Identity(), 4, 0, 4, classifier, texts), cls.Options(top_k=1))
    class_text = torch.stack([texts[2], texts[0]])  # episode class 0 reads like label 2
    method.process_support_set(None, None, class_text)
    assert method(torch.eye(4)[[2, 0]]).argmax(1).tolist() == [0, 1]


def test_conse_without_imagenet_classifier_is_a_clear_error():
    with pytest.raises(UserError, match="conse needs a pretrained backbone"):
        METHODS.get("conse")(Parts(nn.Identity(), 4, 0, 4), METHODS.get("conse").Options())


def spec_of(method: str, backbone: str, head_dim: int, **fields):
    """A `models` entry (the rest from params.yaml's model_defaults)."""
    entry = {"method": method, "backbone": backbone, "head_dim": head_dim} | fields
    return repo_params({"m": entry}).models["m"]


def test_unknown_method_option_names_the_valid_ones():
    expected = r"unknown params key 'siamese.options.margn'; valid keys: loss, margin"
    with pytest.raises(UserError, match=expected):
        build(spec_of("siamese", "conv4", 8, options={"margn": 2}), on_features=False, text_dim=TEXT_DIM)


@pytest.mark.parametrize("method,head_dim", [("protonet", 8), ("conse", 0), ("multimodal", 8)])
def test_checkpoint_round_trip_keeps_logits_and_leaves_frozen_backbone_out(tmp_path, method, head_dim):
    spec = spec_of(method, "efficientnet_lite0", head_dim=head_dim)
    torch.manual_seed(0)
    model, frozen = build(spec, on_features=True, text_dim=TEXT_DIM,
                          imagenet_text=torch.randn(1000, TEXT_DIM))
    save(tmp_path / "m.pt", model, spec, TEXT_DIM, frozen, {"episodes_hash": "abc"})
    assert not any(k.startswith("backbone.") for k in torch.load(tmp_path / "m.pt")["state"])
    again, info = load(tmp_path / "m.pt", on_features=True)
    xs, ys, xq = torch.randn(4, 1280), torch.tensor([0, 0, 1, 1]), torch.randn(3, 1280)
    text = torch.randn(2, TEXT_DIM)
    model.eval()
    for m in (model, again):
        m.process_support_set(xs, ys, text)
    assert torch.allclose(model(xq), again(xq)) and info["episodes_hash"] == "abc" and info["frozen"]
    from_pixels, _ = load(tmp_path / "m.pt", on_features=False)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    from_pixels.process_support_set(images, ys, text)
    assert from_pixels(images[:2]).shape == (2, 2)


def test_a_checkpoint_written_before_a_spec_field_with_a_default_existed_still_loads(tmp_path):
    """Models trained before `pretrain_steps` and `train_n_query` existed have no such spec keys:
    they load with the defaults; a spec key the code does not know is still refused."""
    spec = spec_of("protonet", "conv4", head_dim=8)
    model, frozen = build(spec, on_features=False, text_dim=TEXT_DIM)
    save(tmp_path / "m.pt", model, spec, TEXT_DIM, frozen, {})
    saved = torch.load(tmp_path / "m.pt")
    del saved["spec"]["pretrain_steps"], saved["spec"]["train_n_query"]
    torch.save(saved, tmp_path / "old.pt")
    _, info = load(tmp_path / "old.pt", on_features=False)
    assert info["spec"]["pretrain_steps"] == 0 and info["spec"]["train_n_query"] == 0
    saved["spec"]["future_field"] = 1
    torch.save(saved, tmp_path / "new.pt")
    with pytest.raises(UserError, match="is not a model checkpoint"):
        load(tmp_path / "new.pt", on_features=False)


def test_fine_tuning_trains_and_saves_the_pretrained_backbone(tmp_path):
    spec = spec_of("protonet", "mobilenet_v2", head_dim=8, freeze=False)
    model, frozen = build(spec, on_features=True, text_dim=TEXT_DIM)  # not frozen: takes pixels here
    assert not frozen and all(p.requires_grad for p in model.backbone.parameters())
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2])
    model.train()
    model.loss(Episode(images[:3], labels, images[3:], labels, torch.zeros(3, TEXT_DIM))).backward()
    first_conv = next(model.backbone.parameters())
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    save(tmp_path / "m.pt", model, spec, TEXT_DIM, frozen, {})
    assert any(k.startswith("backbone.") for k in torch.load(tmp_path / "m.pt")["state"])


def test_standardise_fits_training_statistics_saves_them_and_beats_raw_features(tmp_path):
    """Features on wildly different scales (one noisy feature x1000, as hand-crafted light-curve
    features are): nearest prototype on robust z-scores fitted to the training items classifies
    what raw distances cannot; the statistics are saved and reloaded with the model."""
    g = torch.Generator().manual_seed(0)
    n_way, n_shot, n_query = 4, 1, 20

    def sample(n_per_class):
        labels = torch.arange(n_way).repeat_interleave(n_per_class)
        signal = (nn.functional.one_hot(labels, n_way).float() * 2
                  + 0.5 * torch.randn(len(labels), n_way, generator=g))
        noise = 1000 * torch.randn(len(labels), 1, generator=g)
        unused = torch.zeros(len(labels), 145 - n_way - 1)  # lc_features' width; constant features
        return torch.cat([signal, noise, unused], 1), labels

    def accuracy(method):
        hits = []
        for _ in range(20):
            xs, ys = sample(n_shot)
            xq, yq = sample(n_query)
            method.process_support_set(xs, ys, torch.zeros(n_way, TEXT_DIM))
            hits.append((method(xq).argmax(1) == yq).float().mean().item())
        return sum(hits) / len(hits)

    spec = spec_of("protonet", "lc_features", head_dim=0, options={"standardise": True})
    standardised, frozen = build(spec, on_features=True, text_dim=TEXT_DIM)
    raw, _ = build(spec_of("protonet", "lc_features", head_dim=0), on_features=True, text_dim=TEXT_DIM)
    training, _ = sample(50)
    standardised.observe(lambda: training)
    raw.observe(lambda: pytest.fail("a method without standardise must not build the inputs"))
    assert standardised.feature_scale[n_way] > 100 and standardised.feature_scale[0] < 10
    assert standardised.feature_scale[-1] == 1 and standardised.feature_centre[-1] == 0
    assert accuracy(raw) < 0.45 and accuracy(standardised) > accuracy(raw) + 0.3
    save(tmp_path / "m.pt", standardised, spec, TEXT_DIM, frozen, {})
    again, _ = load(tmp_path / "m.pt", on_features=True)
    assert torch.equal(again.feature_centre, standardised.feature_centre)
    assert torch.equal(again.feature_scale, standardised.feature_scale)
