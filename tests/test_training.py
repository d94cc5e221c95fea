"""The training loop's options: class-balanced sampling, micro-motion-safe augmentation,
warm-up and schedules, and their validation."""

import json
import math
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.training import loop
from microexpr.training.augment import augment_batch, random_shift, resolve_flip_indices
from microexpr.training.loop import TrainConfig, balanced_order, lr_factor, train
from microexpr.training.torch_classifier import TorchClassifier


def generator(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class LabelRecorder(nn.Module):
    """A linear model that records the label encoded in pixel (0, 0) of each sample it sees."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.linear = nn.Linear(1, n_classes)
        self.seen: list[int] = []

    def forward(self, x):
        labels = x[:, 0, 0, 0]
        if self.training:
            self.seen.extend(int(v) for v in labels)
        return self.linear(labels[:, None])


def encoded(y):
    x = np.zeros((len(y), 1, 4, 4), np.float32)
    x[:, 0, 0, 0] = y
    return x


# -- class-balanced sampling ------------------------------------------------------------------

def test_sampler_draws_every_class_about_equally_often():
    y = torch.tensor([0] * 800 + [1] * 150 + [2] * 50)
    order = balanced_order(y, 3, generator())
    assert len(order) == len(y)
    counts = np.bincount(y[order].numpy(), minlength=3)
    assert (np.abs(counts / len(y) - 1 / 3) < 0.05).all(), counts
    # an absent class gets no draws and does not break the weights
    counts = np.bincount(y[balanced_order(y, 4, generator())].numpy(), minlength=4)
    assert counts[3] == 0 and counts[:3].min() > 250


@pytest.mark.parametrize("balance", ["none", "loss", "sampler"])
def test_training_loop_balances_the_batches_it_draws(balance):
    y = np.array([0] * 240 + [1] * 40 + [2] * 20)
    model = LabelRecorder()
    config = TrainConfig(epochs=2, batch_size=50, class_balance=balance)
    train(model, encoded(y), y, config, n_classes=3, device=torch.device("cpu"),
          generator=generator())
    counts = np.bincount(model.seen, minlength=3)
    assert counts.sum() == 2 * len(y)
    if balance == "sampler":
        assert (np.abs(counts / counts.sum() - 1 / 3) < 0.06).all(), counts
    else:  # a permutation of the training set each epoch
        np.testing.assert_array_equal(counts, 2 * np.bincount(y))


# -- augmentation ---------------------------------------------------------------------------

def same_channels(n=32, channels=3, frames=None, size=12, seed=0):
    """A batch whose channels (and frames) are all the same image."""
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.normal(size=(n, 1, 1, size, size)).astype(np.float32))
    shape = (n, channels, frames or 1, size, size)
    x = image.expand(shape).clone()
    return x if frames else x[:, :, 0]


@pytest.mark.parametrize("frames", [None, 5])
def test_augmentation_keeps_shapes_and_treats_channels_alike(frames):
    x = same_channels(frames=frames)
    out = augment_batch(x, shift=2, flip=True, generator=generator())
    assert out.shape == x.shape and out.dtype == x.dtype
    reference = out[:, :1]
    torch.testing.assert_close(out, reference.expand_as(out))  # every channel and frame alike
    assert not torch.equal(out, x)  # it did something
    # with a negated channel, that channel is the others' negative exactly where flipped
    out = augment_batch(x, shift=2, flip=True, flip_negate=(1,), generator=generator())
    torch.testing.assert_close(out[:, 0], out[:, 2])
    negated = (out[:, 1] == -out[:, 0]).flatten(1).all(1)
    kept = (out[:, 1] == out[:, 0]).flatten(1).all(1)
    assert (negated | kept).all() and negated.any() and kept.any()


def test_flip_mirrors_and_negates_only_the_listed_channels():
    x = torch.randn(64, 4, 2, 6, 8)  # N x C x T x H x W
    out = augment_batch(x, flip=True, flip_negate=(0, 2), generator=generator(3))
    sign = torch.tensor([-1.0, 1.0, -1.0, 1.0]).view(1, 4, 1, 1, 1)
    mirrored = x.flip(-1) * sign
    flipped = (out == mirrored).flatten(1).all(1)
    unchanged = (out == x).flatten(1).all(1)
    assert (flipped ^ unchanged).all()
    assert 16 < int(flipped.sum()) < 48  # about half of the samples
    # standardised inputs: u -> -u is a reflection about where raw zero lies (-mean / std)
    centre = torch.tensor([0.5, 9.0, -1.0, 9.0])
    out = augment_batch(x, flip=True, flip_negate=(0, 2), negate_about=centre,
                        generator=generator(3))
    mirrored = x.flip(-1) * sign + torch.tensor([1.0, 0.0, -2.0, 0.0]).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(out[flipped], mirrored[flipped])
    torch.testing.assert_close(out[~flipped], x[~flipped])
    with pytest.raises(InputShapeError, match="negate_about"):
        augment_batch(x, flip=True, flip_negate=(0,), negate_about=[0.0], generator=generator())


def test_shift_translates_with_edge_padding():
    x = torch.arange(2 * 3 * 7 * 9, dtype=torch.float32).reshape(2, 3, 7, 9)
    out = random_shift(x, 2, generator(1))
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    for n in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out[n].numpy(),
                                     padded[n, :, 2 - dy:2 - dy + 7, 2 - dx:2 - dx + 9])]
        assert len(matches) == 1
    torch.testing.assert_close(random_shift(x, 0, generator()), x)


def test_augmentation_is_seeded():
    x = torch.randn(16, 2, 10, 10)
    first = augment_batch(x, shift=3, flip=True, flip_negate=(0,), generator=generator(5))
    again = augment_batch(x, shift=3, flip=True, flip_negate=(0,), generator=generator(5))
    other = augment_batch(x, shift=3, flip=True, flip_negate=(0,), generator=generator(6))
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert augment_batch(x, generator=generator()) is x  # nothing asked, nothing done


def test_augmentation_rejects_bad_inputs():
    with pytest.raises(InputShapeError, match="N x C x H x W"):
        augment_batch(torch.zeros(2, 3, 4), shift=1, generator=generator())
    with pytest.raises(ConfigError, match="flip_negate"):
        augment_batch(torch.zeros(2, 2, 4, 4), flip=True, flip_negate=(2,),
                      generator=generator())


def planted(n=90, size=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32)  # u, v, strain
    x[np.arange(n), 2 + 3 * y, 6, 1] += 4.0
    return x, np.array(["a", "b", "c"])[y]


def test_augmented_training_is_deterministic_and_prediction_is_not_augmented(monkeypatch):
    calls = []
    real = loop.augment_batch

    def counting(x, **kwargs):
        calls.append(len(x))
        return real(x, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", counting)
    x, y = planted()
    groups = np.repeat([f"s{i}" for i in range(6)], 15)
    options = {"epochs": 3, "batch_size": 16, "augment_shift": 1, "augment_flip": True,
               "flip_negate": ["u"], "early_stopping": True, "val_fraction": 0.34}
    first = TorchClassifier("ststnet", ["a", "b", "c"], seed=4, train_config=options)
    first.fit(x, y, groups)
    # 60 training samples (2 of 6 subjects held out for validation): 4 batches x 3 epochs;
    # the validation loss is computed on unaugmented inputs
    assert calls == [16, 16, 16, 12] * 3
    calls.clear()
    proba = first.predict_proba(x)
    np.testing.assert_array_equal(proba, first.predict_proba(x))
    assert calls == []  # never at predict time
    second = TorchClassifier("ststnet", ["a", "b", "c"], seed=4, train_config=options)
    second.fit(x, y, groups)
    np.testing.assert_array_equal(second.predict_proba(x), proba)
    assert second.history.train_loss == first.history.train_loss
    other = TorchClassifier("ststnet", ["a", "b", "c"], seed=5, train_config=options)
    assert other.fit(x, y, groups).history.train_loss != first.history.train_loss


def test_the_loop_passes_where_zero_motion_lies(monkeypatch):
    seen = []
    monkeypatch.setattr(loop, "augment_batch",
                        lambda x, **kwargs: seen.append(kwargs["negate_about"]) or x)
    y = np.array([0, 1, 2, 0, 1, 2])
    config = TrainConfig(epochs=2, batch_size=3, augment_flip=True, flip_negate=(0,))
    train(LabelRecorder(), encoded(y), y, config, n_classes=3, device=torch.device("cpu"),
          generator=generator(), flip_center=np.array([0.25]))
    assert len(seen) == 4 and all(list(s) == [0.25] for s in seen)


def test_defaults_do_not_augment_or_resample(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("augmentation / sampler used without being asked for")

    monkeypatch.setattr(loop, "augment_batch", fail)
    monkeypatch.setattr(loop, "balanced_order", fail)
    x, y = planted(30)
    TorchClassifier("ststnet", ["a", "b", "c"], train_config={"epochs": 2}).fit(x, y)
    config = TrainConfig()
    assert (config.warmup_epochs, config.augment_shift, config.augment_flip,
            config.flip_negate) == (0, 0, False, ("u",))


# -- schedules -------------------------------------------------------------------------------

def test_warmup_and_schedules():
    factors = [lr_factor(TrainConfig(epochs=6, warmup_epochs=2), e) for e in range(6)]
    np.testing.assert_allclose(factors, [1 / 3, 2 / 3, 1, 1, 1, 1])
    cosine = [lr_factor(TrainConfig(epochs=6, warmup_epochs=2, schedule="cosine"), e)
              for e in range(6)]
    np.testing.assert_allclose(cosine, [1 / 3, 2 / 3, 1, 0.5 * (1 + math.cos(math.pi / 4)),
                                        0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])
    step = [lr_factor(TrainConfig(epochs=9, schedule="step"), e) for e in range(9)]
    np.testing.assert_allclose(step, [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    # without warm-up, cosine is what it always was
    plain = [lr_factor(TrainConfig(epochs=4, schedule="cosine"), e) for e in range(4)]
    np.testing.assert_allclose(plain, [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])


@pytest.fixture
def sgd_lrs(monkeypatch):
    """The learning rate of every SGD step taken while the test runs."""
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    return seen


def test_the_loop_applies_the_warmup_to_the_optimizer(sgd_lrs):
    seen = sgd_lrs
    y = np.array([0, 1, 2, 0])
    config = TrainConfig(epochs=4, batch_size=4, lr=0.3, optimizer="sgd", warmup_epochs=2)
    train(LabelRecorder(), encoded(y), y, config, n_classes=3, device=torch.device("cpu"),
          generator=generator())
    np.testing.assert_allclose(seen, [0.1, 0.2, 0.3, 0.3])


def test_steps_fix_the_optimiser_steps_whatever_the_fold_size(sgd_lrs):
    seen = sgd_lrs
    for n in (6, 13):  # 2 and 3 batches of 4 an epoch (a last batch of one is skipped)
        seen.clear()
        y = np.arange(n) % 3
        config = TrainConfig(steps=7, batch_size=4, lr=0.3, optimizer="sgd",
                             schedule="cosine")
        history = train(LabelRecorder(), encoded(y), y, config, n_classes=3,
                        device=torch.device("cpu"), generator=generator())
        epochs = {6: 4, 13: 3}[n]
        assert len(seen) == 7
        assert len(history.train_loss) == epochs  # the last epoch cut short
        per_epoch = {6: 2, 13: 3}[n]
        expected = [0.3 * lr_factor(TrainConfig(epochs=epochs, schedule="cosine"), e)
                    for e in range(epochs) for _ in range(per_epoch)][:7]
        np.testing.assert_allclose(seen, expected)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        train(LabelRecorder(), encoded(np.arange(8) % 3), np.arange(8) % 3,
              TrainConfig(steps=2, batch_size=4, warmup_epochs=1), n_classes=3,
              device=torch.device("cpu"), generator=generator())



@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_the_fused_optimiser_makes_the_per_tensor_update(name):
    # The loop takes torch's fused kernel (one pass over every parameter, much faster for
    # big networks on the CPU); its steps must match the per-tensor optimiser's.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    twin = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    config = TrainConfig(optimizer=name, lr=0.05, weight_decay=1e-3)
    fused = loop.make_optimizer(model, config)
    assert fused.defaults["fused"]
    reference = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(name)
    plain = (reference(twin.parameters(), lr=0.05, weight_decay=1e-3, foreach=False)
             if reference else torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9,
                                               weight_decay=1e-3, foreach=False))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(5):
        for net, optimizer in ((model, fused), (twin, plain)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "field"), [
    ({"class_balance": "oversample"}, "class_balance"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs"),
    ({"warmup_epochs": 1.5}, "warmup_epochs"),
    ({"steps": -1}, "steps"),
    ({"augment_shift": -2}, "augment_shift"),
    ({"augment_shift": 0.5}, "augment_shift"),
    ({"augment_flip": 0.5}, "augment_flip"),
    ({"flip_negate": (0, 0)}, "flip_negate"),
    ({"flip_negate": (-1,)}, "flip_negate"),
    ({"flip_negate": ("u", "u")}, "flip_negate"),
    ({"flip_negate": ("u", 0)}, "flip_negate"),
    ({"flip_negate": ("",)}, "flip_negate"),
])
def test_config_validation_names_the_field(options, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**options)


# what `--train-option key=value` hands over (YAML-parsed): each bad value is one message
# naming the option, the value and what it must be, raised before any work
@pytest.mark.parametrize(("options", "expected"), [
    ({"lr": "abc"}, "lr='abc' is invalid: lr must be a number > 0"),
    ({"lr": 0}, "lr=0 is invalid"),
    ({"lr": float("nan")}, "lr=nan is invalid"),
    ({"batch_size": "abc"}, "batch_size='abc' is invalid: batch_size must be an integer >= 1"),
    ({"epochs": 1.5}, "epochs=1.5 is invalid: epochs must be an integer >= 1"),
    ({"epochs": True}, "epochs=True is invalid"),
    ({"patience": "x"}, "patience='x' is invalid"),
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001 is invalid: weight_decay must be a "
                              "number >= 0"),
    ({"val_fraction": 1}, "val_fraction=1 is invalid: val_fraction must be a number in (0, 1)"),
    ({"optimizer": "foo"}, "optimizer='foo' is invalid: optimizer must be one of adam, "
                           "adamw, sgd"),
    ({"schedule": 3}, "schedule=3 is invalid"),
    ({"early_stopping": "yes"}, "early_stopping='yes' is invalid: early_stopping must be true "
                                "or false"),
])
def test_training_options_are_checked_by_type_and_range(options, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        TrainConfig(**options)
    with pytest.raises(ConfigError, match="--train-option"):
        TorchClassifier("ststnet", ["a", "b"], train_config=options)


def test_training_options_accept_what_yaml_and_json_give():
    # YAML reads "5e-5" as a string; JSON may write 40 as 40.0
    config = TrainConfig(lr="5e-5", epochs=40.0, weight_decay=0, flip_negate="u, magnitude")
    assert config.lr == 5e-5 and isinstance(config.lr, float)
    assert config.epochs == 40 and isinstance(config.epochs, int)
    assert config.weight_decay == 0.0 and config.flip_negate == ("u", "magnitude")
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config


def test_flip_negate_names_channels_and_old_indices_still_work():
    config = TrainConfig(augment_flip=True, flip_negate=["u", "magnitude"])
    assert config.flip_negate == ("u", "magnitude")
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config
    # integers are channel indices, as configs and saved models from before names hold them
    assert TrainConfig(flip_negate=[0, 2]).flip_negate == (0, 2)
    assert TrainConfig(flip_negate=1).flip_negate == (1,)
    assert resolve_flip_indices((0, 2), ("v", "u", "strain")) == (0, 2)
    # names: their place among the input's channels; absent ones (or unknown names) negate
    # nothing
    assert resolve_flip_indices(("u",), ("u", "v", "strain")) == (0,)
    assert resolve_flip_indices(("u",), ("apex", "u", "v", "strain")) == (1,)
    assert resolve_flip_indices(("u", "magnitude"), ("magnitude", "v", "u")) == (2, 0)
    assert resolve_flip_indices(("u",), ("gray",)) == ()
    assert resolve_flip_indices(("u",), None) == ()
    with pytest.raises(ConfigError, match="resolve_flip_indices"):
        augment_batch(torch.zeros(2, 2, 4, 4), flip=True, flip_negate=("u",),
                      generator=generator())
    x, y = planted(12)
    with pytest.raises(ConfigError, match="flip_negate"):
        TorchClassifier("ststnet", ["a", "b", "c"],
                        train_config={"epochs": 1, "augment_flip": True,
                                      "flip_negate": (3,)}).fit(x, y)


def flips_negated(monkeypatch, model, x, y, **fit):
    """The flip_negate indices the training loop hands to the augmentation."""
    seen = []
    real = loop.augment_batch

    def record(xb, **kwargs):
        seen.append(tuple(kwargs["flip_negate"]))
        return real(xb, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", record)
    classifier = TorchClassifier(model, ["a", "b", "c"],
                                 train_config={"epochs": 1, "batch_size": 16,
                                               "augment_flip": True, "flip_negate": ["u"]})
    classifier.fit(x, y, **fit)
    assert len(set(seen)) == 1
    return seen[0], classifier


def test_a_flip_negates_the_channel_named_u_wherever_it_is(monkeypatch, tmp_path):
    x, y = planted(32)
    negated, model = flips_negated(monkeypatch, "ststnet", x, y, channels=("v", "u", "strain"))
    assert negated == (1,) and model.channels == ("v", "u", "strain")
    loaded = TorchClassifier.load(model.save(tmp_path / "m.pt"))
    assert loaded.channels == ("v", "u", "strain")
    # unnamed inputs of the model's channel count are taken to be its input_channels
    negated, model = flips_negated(monkeypatch, "ststnet", x, y)
    assert negated == (0,) and model.channels == ("u", "v", "strain")
    # a model that takes any channels, with unnamed inputs: nothing to negate
    image = np.tile(x[..., :1], (1, 2, 2, 1))  # 24 x 24 gray
    assert flips_negated(monkeypatch, "deep_emotion", image, y)[0] == ()
    assert flips_negated(monkeypatch, "deep_emotion", image, y, channels=("u",))[0] == (0,)
    with pytest.raises(InputShapeError, match="name each of the inputs' 3 channel"):
        TorchClassifier("ststnet", ["a", "b", "c"]).fit(x, y, channels=("u", "v"))
    with pytest.raises(ConfigError, match="augment_shift"):
        train(nn.Linear(4, 3), np.zeros((4, 4), np.float32), np.array([0, 1, 2, 0]),
              TrainConfig(epochs=1, augment_shift=1), n_classes=3,
              device=torch.device("cpu"), generator=generator())
