"""Spotting evaluated on long videos: leave-one-subject-out with the threshold (or a learned
spotter) chosen on the training subjects only, results that recompute, the naive motion
threshold as the peer, and the command line."""

import json

import numpy as np
import pandas as pd
import pytest

from microexpr.cli import main
from microexpr.data.long_videos import load_long_videos
from microexpr.errors import ConfigError
from microexpr.evaluation.spotting import spotting_metrics
from microexpr.synth.long_video import synthesize_long
from microexpr.video import spot_evaluation
from microexpr.video.spot_evaluation import evaluate_spotting
from microexpr.video.spotters import MDMDSpotter


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    root = synthesize_long(tmp_path_factory.mktemp("long") / "casme2", subjects=3,
                           videos_per_subject=1, seconds=10.0, seed=4)
    return load_long_videos("casme2_long", root)


@pytest.fixture(scope="module")
def mdmd_run(long_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mdmd"
    return evaluate_spotting(long_videos, "mdmd", out=out, progress=False)


def test_the_thresholds_of_each_fold_are_chosen_on_its_training_subjects_only(long_videos,
                                                                             monkeypatch):
    seen = []
    choose = spot_evaluation.choose_threshold

    def spy(thresholds, predict, truth, **kwargs):
        shown = predict(thresholds[0])  # what a candidate threshold is scored on
        seen.append(set(shown["subject"]) | set(truth["subject"]))
        return choose(thresholds, predict, truth, **kwargs)

    monkeypatch.setattr(spot_evaluation, "choose_threshold", spy)
    result = evaluate_spotting(long_videos, "mdmd", write=False, progress=False)
    subjects = set(long_videos.subjects)
    folds = result.config["folds"]
    assert len(seen) == 2 * len(folds) == 2 * len(subjects)  # macro, then micro, per fold
    for fold, (macro, micro) in zip(folds, zip(seen[::2], seen[1::2], strict=True),
                                    strict=True):
        assert fold["held_out"] not in macro | micro
        assert micro <= subjects - {fold["held_out"]}
        assert fold["p"] in result.config["thresholds"]
        assert fold["p_macro"] in result.config["thresholds"]
    held_out = result.predictions.groupby("subject")["fold"].nunique()
    assert (held_out == 1).all()  # each subject's videos are predicted by one fold


def test_micro_intervals_inside_a_macro_interval_are_dropped():
    micro = pd.DataFrame({"video": ["a", "a", "b"], "onset": [10, 40, 10],
                          "offset": [22, 52, 22]})
    macro = pd.DataFrame({"video": ["a"], "onset": [5], "offset": [45]})
    kept = spot_evaluation.without_overlap(micro, macro)
    assert kept["onset"].tolist() == [40, 10]  # [40, 52] has 6 of 13 frames inside: kept


def test_results_hold_everything_to_recompute_the_metrics(mdmd_run):
    out = mdmd_run.out_dir
    for name in ("config.yaml", "predictions.csv", "truth.csv", "matches.csv", "counts.csv",
                 "metrics.json"):
        assert (out / name).is_file(), name
    predictions, truth = pd.read_csv(out / "predictions.csv"), pd.read_csv(out / "truth.csv")
    again = spotting_metrics(predictions, truth)
    saved = json.loads((out / "metrics.json").read_text())
    for part in ("micro", "macro", "overall"):
        for key in ("tp", "fp", "fn"):
            assert again[part][key] == saved[part][key]
    counts = pd.read_csv(out / "counts.csv")
    assert counts[["tp", "fp", "fn"]].sum().tolist() == [
        saved["overall"]["tp"], saved["overall"]["fp"], saved["overall"]["fn"]]
    # per-frame scores of every video, so any threshold can be re-applied
    for video in mdmd_run.truth["video"].unique():
        frames = pd.read_csv(out / "videos" / video / "frames.csv")
        assert {"score", "segment"} <= set(frames.columns)
    assert saved["micro"]["tp"] >= 1  # it finds micro-expressions at all


def test_the_default_spotter_has_far_fewer_false_positives_than_a_plain_motion_threshold(
        long_videos, mdmd_run):
    plain = evaluate_spotting(long_videos, "motion", macro_spotter=None, write=False,
                              progress=False)
    assert mdmd_run.metrics["overall"]["fp"] * 2 < plain.metrics["overall"]["fp"]
    assert mdmd_run.metrics["micro"]["f1"] > plain.metrics["micro"]["f1"]


class _LearnedSpotter(MDMDSpotter):
    """A spotter that "learns" its threshold: it records what `fit` was shown."""

    name = "recording"
    shown: list = []

    def fit(self, videos, intervals, *, progress=False):
        _LearnedSpotter.shown.append((set(videos["subject"]), set(intervals["subject"])))
        return type(self)(self.config, p=0.3)


def test_a_learned_spotter_is_fitted_per_fold_without_its_test_subject(long_videos):
    _LearnedSpotter.shown = []
    result = evaluate_spotting(long_videos, _LearnedSpotter(), write=False, progress=False)
    assert result.config["learned"] and "p" not in result.config["folds"][0]
    for (videos, truth), fold in zip(_LearnedSpotter.shown, result.config["folds"],
                                     strict=True):
        assert fold["held_out"] not in videos | truth and len(videos) == 2
    with pytest.raises(ConfigError, match="chooses its own threshold"):
        evaluate_spotting(long_videos, _LearnedSpotter(), thresholds=[0.5], macro_spotter=None,
                          write=False)


def test_bad_arguments_fail_before_any_work(long_videos, tmp_path):
    with pytest.raises(ConfigError, match="thresholds"):
        evaluate_spotting(long_videos, thresholds=[1.5], write=False)
    with pytest.raises(ConfigError, match="loso"):
        evaluate_spotting(long_videos, protocol="lodo", write=False)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty"):
        evaluate_spotting(long_videos, out=tmp_path / "taken")
    with pytest.raises(ConfigError, match="root"):
        evaluate_spotting("casme2_long")


def test_cli_synth_long_and_evaluate_task_spot(tmp_path, capsys):
    root = tmp_path / "long"
    with pytest.raises(SystemExit) as done:
        main(["synth", str(root), "--long", "--subjects", "2", "--videos-per-subject", "1",
              "--seconds", "6"])
    assert done.value.code in (0, None)
    assert "casme2_long" in capsys.readouterr().out  # the hint of how to spot in them
    out = tmp_path / "spot"
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--task", "spot", "--dataset", "casme2_long", "--root", str(root),
              "--out", str(out), "--format", "json"])
    assert done.value.code in (0, None), capsys.readouterr().err
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["micro", "macro", "overall"]
    assert np.isclose(rows[-1]["f1"], json.loads((out / "metrics.json").read_text())
                      ["overall"]["f1"], equal_nan=True)
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--task", "spot", "--dataset", "casme2_long", "--root", str(root),
              "--labels", "composite3"])
    assert done.value.code == 2


def test_spot_then_recognise_labels_every_spotted_interval(long_videos, tmp_path):
    import microexpr

    root = microexpr.synthesize(tmp_path / "clips", subjects=3, clips_per_class=2, size=64,
                                progress=False)
    data = microexpr.load_dataset("casme2", root, labels="composite3")
    model = tmp_path / "ststnet.pt"
    microexpr.train(data, "ststnet", epochs=2, out=model, representation={"method": "dis"},
                    cache_dir=tmp_path / "cache", progress=False)
    result = evaluate_spotting(long_videos, "mdmd", macro_spotter=None, model=model,
                               write=False, progress=False)
    labels = result.predictions["label"]
    assert len(labels) and set(labels) <= {"negative", "positive", "surprise", ""}
    assert {"p_negative", "p_positive", "p_surprise"} <= set(result.predictions.columns)
    strs = result.metrics["strs"]["overall"]
    spotting = result.metrics["overall"]["f1"]
    assert strs["spotting_f1"] == spotting
    assert strs["strs"] == pytest.approx(spotting * strs["analysis_f1"], nan_ok=True)
    assert result.config["recognition"]["model"]["name"] == "ststnet"
    assert "STRS" in result.summary()


def test_analyze_runs_a_macro_pass_in_the_same_stream(long_videos):
    from microexpr.video import analyze

    video = long_videos.videos.iloc[0]
    one = analyze(video["folder"], fps=float(video["fps"]))
    both = analyze(video["folder"], fps=float(video["fps"]), macro_spotter="default")
    np.testing.assert_array_equal(one.frames["score"], both.frames["score"])  # same micro pass
    assert {"score_macro", "signal_macro"} <= set(both.frames.columns)
    assert np.isfinite(both.frames["score_macro"]).sum() > 0
    macro = both.intervals[both.intervals["kind"] == "macro"]
    assert len(macro) >= 1 and both.summary["config"]["macro_spotter"]["half_duration_s"] == 0.9
    micro = both.intervals[both.intervals["kind"] == "micro"]
    assert spot_evaluation.without_overlap(micro, macro).equals(micro.reset_index(drop=True))
