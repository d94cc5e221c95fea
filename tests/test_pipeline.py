"""End to end on real files: synthetic CASME II-layout database -> adapter -> flow -> LOSO."""

import pytest

import microexpr
from microexpr.evaluation.report import load_results


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return microexpr.synthesize(root, subjects=4, clips_per_class=3, size=64, seed=5)


def test_synthetic_database_reads_as_casme2(synthetic_root):
    data = microexpr.load_dataset("casme2", synthetic_root, namespace="synth")
    assert len(data.clips) == 36 and data.n_excluded == 0
    assert data.subjects == ["synth/sub01", "synth/sub02", "synth/sub03", "synth/sub04"]
    assert set(data.clips["emotion"]) == {"happiness", "disgust", "surprise"}
    assert (data.clips["fps"] == 200).all()
    labelled = data.with_labels("composite3")
    assert labelled.class_counts().loc["total", "total"] == 36


def test_loso_on_synthetic_database_learns(synthetic_root, tmp_path):
    data = microexpr.load_dataset("casme2", synthetic_root, namespace="synth",
                                  labels="composite3")
    out = tmp_path / "results"
    result = microexpr.evaluate(data, "ststnet", epochs=30, train={"batch_size": 8},
                                representation={"compute_size": 64}, seed=0, out=out,
                                cache_dir=tmp_path / "cache", progress=False)
    assert result.metrics["uf1"] >= 0.8  # chance is 1/3
    config, predictions, metrics = load_results(out)
    assert config["data"]["labels"] == "composite3"
    assert config["representation"]["method"] == "tvl1"
    assert set(predictions["subject"]) == set(data.subjects)
    assert metrics["per_dataset"]["synth"]["n"] == 36
    assert any((tmp_path / "cache").rglob("*.npy"))


def test_a_model_can_take_another_representation(synthetic_root):
    data = microexpr.load_dataset("casme2", synthetic_root, labels="composite3")
    result = microexpr.evaluate(data, "micro_attention", input_representation="apex_flow",
                                representation={"size": 32, "compute_size": 64,
                                                "method": "dis"},
                                epochs=1, cache_dir=None, progress=False, write=False)
    assert result.config["representation"]["name"] == "apex_flow"
    assert result.config["representation"]["size"] == 32
    assert len(result.predictions) == 36
