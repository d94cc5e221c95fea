"""Recipes: named training settings and params per model (the fast default, the paper's)."""

import pytest

from microexpr.errors import ConfigError
from microexpr.models import MODELS, ModelSpec, get_model_spec, list_models
from microexpr.training.loop import TrainConfig
from microexpr.training.recipes import check_recipes, make_train_config


def test_ststnet_paper_recipe_is_the_authors_settings():
    spec = get_model_spec("ststnet")
    train, params = spec.recipe("paper")
    config = make_train_config(spec, train)
    assert (config.epochs, config.lr, config.batch_size, config.optimizer) == (800, 5e-5, 256,
                                                                              "adam")
    assert not config.early_stopping and not config.augment_flip and params == {}
    assert "Liong" in spec.recipes["paper"]["note"]
    # the user's options override the recipe's (the recipe is applied first)
    assert make_train_config(spec, {**train, "epochs": 5}).epochs == 5
    assert make_train_config(spec, train, epochs=7).lr == 5e-5


def test_off_apexnet_paper_recipe_names_its_source():
    spec = get_model_spec("off_apexnet")
    train, _ = spec.recipe("paper")
    config = make_train_config(spec, train)
    assert (config.epochs, config.lr, config.batch_size) == (3000, 1e-4, 64)
    assert "Off-TANet" in spec.recipes["paper"]["note"]


def test_default_recipe_is_the_spec_itself_and_unknown_recipes_list_the_known_ones():
    for name in ("ststnet", "micro_attention", "bi_woof_svm"):
        assert get_model_spec(name).recipe("default") == ({}, {})
    with pytest.raises(ConfigError, match=r"micro_attention has no recipe 'paper'; its "
                                          r"recipes: \['default'\]"):
        get_model_spec("micro_attention").recipe("paper")
    with pytest.raises(ConfigError, match=r"\['default', 'paper'\]"):
        get_model_spec("ststnet").recipe("fast")


def test_every_recipe_of_every_model_applies_cleanly():
    table = list_models().set_index("name")
    for name, spec in MODELS.items():
        assert table.loc[name, "recipes"] == ", ".join(spec.recipe_names)
        for recipe in spec.recipe_names:
            train, params = spec.recipe(recipe)
            if spec.kind == "torch":
                assert isinstance(make_train_config(spec, train), TrainConfig)
            else:
                assert train == {}
            assert set(params) <= set(spec.params)
            spec.check_params(params)
    assert get_model_spec("lbp_top_svm").recipe("paper")[1]["radii"] == (1, 1, 4)


def recipe_spec(recipes, kind="torch"):
    return ModelSpec(name="test_recipes", build=lambda *a, **k: None, representation="x",
                     reference="-", description="-", kind=kind, params={"dropout": 0.5},
                     recipes=recipes)


@pytest.mark.parametrize(("recipes", "problem"), [
    ({"paper": {"train": {"epoch": 3}, "note": "a"}}, "unknown training option"),
    ({"paper": {"train": {"lr": "fast"}, "note": "a"}}, "lr='fast'"),
    ({"paper": {"train": {"loss_weights.deviation": 1}, "note": "a"}}, "does not have"),
])
def test_the_training_stage_refuses_a_bad_recipe(recipes, problem):
    """Recipes are plain data in the models stage; the training stage validates them."""
    spec = recipe_spec(recipes)
    with pytest.raises(ConfigError, match=problem):
        check_recipes(spec)
    with pytest.raises(ConfigError, match=problem):
        make_train_config(spec, spec.recipe("paper")[0])


def test_every_registered_recipe_is_valid_training_data():
    names = list_models()["name"]  # loads the registry
    assert len(names) == len(MODELS) >= 10
    for spec in MODELS.values():
        check_recipes(spec)  # raises on a registry bug


@pytest.mark.parametrize(("recipes", "problem"), [
    ({"paper": {"params": {"dropout": 1.5}, "note": "a"}}, "dropout=1.5"),
    ({"paper": {"params": {"depth": 2}, "note": "a"}}, "unknown parameter"),
    ({"paper": {"train": {"epochs": 5}}}, "note"),
    ({"default": {"note": "a"}}, "default recipe"),
])
def test_a_bad_recipe_is_refused_at_registration(recipes, problem):
    with pytest.raises(ValueError, match=problem):
        recipe_spec(recipes)
    assert recipe_spec({"paper": {"params": {"dropout": 0.1}, "note": "a"}}).recipe(
        "paper") == ({}, {"dropout": 0.1})
    with pytest.raises(ValueError, match="takes no training options"):
        recipe_spec({"paper": {"train": {"epochs": 5}, "note": "a"}}, kind="sklearn")


def test_a_recipe_may_set_representation_options_under_the_users():
    from microexpr.evaluation.runner import _merge_options

    spec = recipe_spec({"paper": {"representation": {"flow": {"size": 144, "method": "tvl1"}},
                                  "note": "a"}})
    assert spec.recipe_representation("default") == {}
    options = spec.recipe_representation("paper")
    assert options == {"flow": {"size": 144, "method": "tvl1"}}
    assert _merge_options(options, {"flow": {"method": "dis"}}) == {
        "flow": {"size": 144, "method": "dis"}}
    assert _merge_options({}, None) is None
    with pytest.raises(ConfigError, match="no recipe"):
        spec.recipe_representation("fast")
