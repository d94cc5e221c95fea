"""`mimanet` (macro-to-micro transfer): MaNet is trained once on macro clips and cached; MiNet
learns held-out subjects under its guidance, every guidance term falls, a saved MiNet predicts
alone, and the guidance parts behave as documented."""

import numpy as np
import pytest
import torch
import yaml

import microexpr
from microexpr.errors import ConfigError
from microexpr.models import get_model_spec
from microexpr.models.mimanet import MiMaNet, reverse_gradient, sample_sequence
from microexpr.representations import compute_representation
from microexpr.training.estimators import load_model
from microexpr.training.guidance import train_guide
from microexpr.training.losses import cross_domain_contrastive_loss

CLASSES = ("negative", "positive", "surprise")
SMALL = {"apex": {"size": 32}, "clip": {"size": 32}}  # the default 64 px, halved for speed


def _inputs(clips):
    spec = get_model_spec("mimanet")
    return {name: compute_representation(clips, rep, {**config, **SMALL[name]},
                                         cache_dir=None, progress=False)
            for name, (rep, config) in spec.named_inputs().items()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Micro clips of 4 synthetic subjects and macro clips (larger motion) of 3 others."""
    base = tmp_path_factory.mktemp("mimanet")
    micro = microexpr.load_dataset(
        "casme2", microexpr.synthesize(base / "micro", subjects=4, clips_per_class=4, size=64,
                                       seed=5, amplitude=6.0), labels="composite3").clips
    macro = microexpr.load_dataset(
        "casme2", microexpr.synthesize(base / "macro", subjects=3, clips_per_class=4, size=64,
                                       seed=1000, amplitude=8.0), labels="composite3").clips
    return micro, _inputs(micro), macro, _inputs(macro), base / "cache", base


@pytest.fixture(scope="module")
def guide(data):
    _, _, macro, macro_x, cache, _ = data
    return train_guide(macro_x, macro["label"].to_numpy(), CLASSES, seed=0,
                       train_config={"epochs": 20}, groups=macro["subject"].to_numpy(),
                       cache_dir=cache)


@pytest.fixture(scope="module")
def trained(data, guide):
    micro, x, *_ = data
    y, subjects = micro["label"].to_numpy(), micro["subject"].to_numpy()
    test = subjects == sorted(set(subjects))[-1]
    model = microexpr.TorchClassifier("mimanet", CLASSES, guide=guide, seed=0,
                                      train_config={"epochs": 40})
    model.fit({k: v[~test] for k, v in x.items()}, y[~test], subjects[~test])
    return model, {k: v[test] for k, v in x.items()}, y[test]


def test_mimanet_learns_a_held_out_subject_and_every_guidance_term_falls(trained):
    model, x_test, y_test = trained
    assert np.mean(model.predict(x_test) == y_test) > 0.6  # chance 1/3
    terms = model.history.terms
    assert set(terms) == {"cross_entropy", "domain", "relation", "contrastive"}
    for name, values in terms.items():
        first, last = np.mean(values[:5]), np.mean(values[-5:])
        assert last < 0.95 * first, (name, first, last)


def test_manet_is_trained_once_and_then_loaded_from_its_cache(data, guide):
    _, _, macro, macro_x, cache, _ = data
    assert guide.info["trained_once_per_run"] and not guide.info["loaded_from_cache"]
    again = train_guide(macro_x, macro["label"].to_numpy(), CLASSES, seed=0,
                        train_config={"epochs": 20}, groups=macro["subject"].to_numpy(),
                        cache_dir=cache)
    assert again.info["loaded_from_cache"] and again.info["key"] == guide.info["key"]
    for name, tensor in guide.manet_state.items():
        torch.testing.assert_close(again.manet_state[name], tensor)
    other = train_guide(macro_x, macro["label"].to_numpy(), CLASSES, seed=1,
                        train_config={"epochs": 2}, cache_dir=cache)
    assert other.info["key"] != guide.info["key"] and not other.info["loaded_from_cache"]


def test_a_saved_minet_predicts_alone_and_the_same(trained, tmp_path):
    model, x_test, _ = trained
    loaded = load_model(model.save(tmp_path / "mimanet.pt"))
    np.testing.assert_allclose(loaded.predict_proba(x_test), model.predict_proba(x_test),
                               atol=1e-5)
    assert loaded.guide is None  # macro data is not saved with the model
    with pytest.raises(ConfigError, match="--macro"):
        loaded.fit(x_test, np.array(CLASSES * 4)[:len(x_test["apex"])])


def test_without_guidance_it_is_minet_alone(data):
    micro, x, *_ = data
    model = microexpr.TorchClassifier("mimanet", CLASSES, params={"guidance": False},
                                      train_config={"epochs": 2})
    model.fit(x, micro["label"].to_numpy())
    assert model.module.manet is None and set(model.history.terms) == {"cross_entropy"}
    with pytest.raises(ConfigError, match="guidance=false"):
        microexpr.TorchClassifier("mimanet", CLASSES, train_config={"epochs": 1}).fit(
            x, micro["label"].to_numpy())


def test_each_guidance_term_can_be_switched_off(data, guide):
    micro, x, *_ = data
    for param, term in (("adversarial", "domain"), ("relation", "relation"),
                        ("contrastive", "contrastive")):
        model = microexpr.TorchClassifier("mimanet", CLASSES, params={param: False},
                                          guide=guide, train_config={"epochs": 1})
        model.fit(x, micro["label"].to_numpy())
        assert term not in model.history.terms and "cross_entropy" in model.history.terms


def test_sampling_intervals_pick_every_kth_frame_and_evaluation_takes_the_whole_clip():
    clip = torch.arange(16.0).reshape(1, 1, 16, 1, 1).expand(2, 1, 16, 2, 2)
    out = sample_sequence(clip, 4, torch.tensor([1, 5]), torch.tensor([3, 0]))
    assert out[0, 0, :, 0, 0].tolist() == [3, 4, 5, 6]
    assert out[1, 0, :, 0, 0].tolist() == [0, 5, 10, 15]
    net = MiMaNet(1, 16, 3, guidance=False).eval()
    assert net.max_interval == 5
    with pytest.raises(Exception, match="at least 7 frames"):
        MiMaNet(1, 6, 3)  # intervals 1 only: nothing for the relation classifier to predict


def test_gradient_reversal_and_the_contrastive_loss():
    x = torch.ones(3, requires_grad=True)
    (2 * reverse_gradient(x, 0.5)).sum().backward()
    assert x.grad.tolist() == [-1.0, -1.0, -1.0]
    micro = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    aligned = cross_domain_contrastive_loss(micro, labels, micro.clone(), labels)
    crossed = cross_domain_contrastive_loss(micro, labels, micro.flip(0), labels)
    assert aligned < 0.01 < crossed
    none = cross_domain_contrastive_loss(micro, labels, micro, torch.tensor([-1, -1]))
    assert float(none) == 0.0


def test_evaluate_trains_manet_once_and_records_it(data, tmp_path):
    micro, *_, base = data
    dataset = microexpr.load_dataset("casme2", base / "micro", labels="composite3")
    result = microexpr.evaluate(dataset, "mimanet", macro=f"casme2={base / 'macro'}",
                                representation=SMALL, epochs=2, out=tmp_path / "run",
                                cache_dir=tmp_path / "cache", progress=False)
    macro = result.config["macro"]
    assert macro["sources"][0]["format"] == "casme2" and macro["n_clips"] == 36
    assert macro["manet"]["trained_once_per_run"] and macro["manet"]["fit_seconds"] > 0
    assert len(result.predictions) == len(micro)
    with pytest.raises(ConfigError, match="does not learn from macro"):
        microexpr.evaluate(dataset, "ststnet", macro=str(base / "macro"), write=False)
    with pytest.raises(ConfigError, match="give macro data"):
        microexpr.evaluate(dataset, "mimanet", write=False)
    with pytest.raises(ConfigError, match="is not a folder"):
        microexpr.evaluate(dataset, "mimanet", macro=str(tmp_path / "nowhere"), write=False)


def test_the_cli_evaluates_mimanet_with_synthetic_ckplus_found_by_its_layout(data, tmp_path,
                                                                              capsys):
    from microexpr.cli import main

    *_, base = data
    macro = tmp_path / "macro"
    with pytest.raises(SystemExit) as done:
        main(["synth", str(macro), "--macro", "--subjects", "3", "--size", "64"])
    assert done.value.code in (0, None)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--dataset", "casme2", "--root", str(base / "micro"),
              "--labels", "composite3", "--model", "mimanet", "--macro", str(macro),
              "--epochs", "1", "--option", "apex.size=32", "--option", "clip.size=32",
              "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--format", "json"])
    assert done.value.code in (0, None), capsys.readouterr()
    config = yaml.safe_load((out / "config.yaml").read_text())
    source = config["macro"]["sources"][0]
    assert source["format"] == "ckplus" and source["n_clips"] > 0
    assert config["macro"]["manet"]["trained_once_per_run"]
    assert (out / "predictions.csv").is_file()
