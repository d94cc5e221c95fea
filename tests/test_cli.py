"""The command line: a thin layer that prints tables, writes results and explains errors."""

import json

import pytest

from microexpr.cli import main

from trees import make_casme2


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, " ".join((out.out + out.err).split())  # undo line wrapping


def test_datasets_list(capsys):
    code, text = run(["datasets", "list"], capsys)
    assert code == 0
    for name in ("casme2", "samm", "smic", "casme3", "mmew", "4dme", "casme", "composite3"):
        assert name in text


def test_datasets_check_reports_counts_and_problems(tmp_path, capsys):
    root = make_casme2(tmp_path)
    (root / "CASME2_RAW_selected" / "sub01" / "EP00_01" / "img3.jpg").unlink()
    code, text = run(["datasets", "check", "casme2", "--root", str(root)], capsys)
    assert code == 0
    assert "6 clips from 3 subjects; 1 clips excluded" in text
    assert "apex frame 3 not found" in text
    assert "Scheme composite3" in text and "Scheme casme2_5" in text


def test_evaluate_manifest_writes_results(signal_manifest, tmp_path, capsys):
    out = tmp_path / "res"
    code, text = run(["evaluate", "--manifest", str(signal_manifest), "--epochs", "2",
                      "--out", str(out), "--no-cache"], capsys)
    assert code == 0, text
    assert "UF1" in text.upper() and str(out) in text.replace("\n", "")
    assert json.loads((out / "metrics.json").read_text())["n"] == 72


def test_errors_are_messages_with_exit_code_2(tmp_path, capsys):
    code, text = run(["datasets", "check", "casme2", "--root", str(tmp_path / "nowhere")],
                     capsys)
    assert code == 2 and "does not exist" in text and "Traceback" not in text
    code, text = run(["evaluate", "--dataset", "casme2", "--root", str(make_casme2(tmp_path))],
                     capsys)
    assert code == 2 and "--labels" in text
    code, text = run(["evaluate"], capsys)
    assert code == 2 and "either --dataset" in text
    code, text = run(["evaluate", "--dataset", "composite", "--root", "smic=/x"], capsys)
    assert code == 2 and "missing --root casme2=PATH" in text


def test_prepare_computes_then_reuses_the_cache(tmp_path, capsys):
    import microexpr

    root = microexpr.synthesize(tmp_path / "db", subjects=2, clips_per_class=1, size=48)
    argv = ["prepare", "--dataset", "casme2", "--root", str(root), "--option", "method=dis",
            "--option", "compute_size=48", "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"]
    code, text = run(argv, capsys)
    assert code == 0 and "6 clips, 6 computed, 0 from the cache, 0 failed" in text
    code, text = run(argv, capsys)
    assert code == 0 and "0 computed, 6 from the cache" in text
    code, text = run([*argv, "--option", "size=14"], capsys)  # a changed config: new entries
    assert code == 0 and "6 computed" in text
    code, text = run([*argv, "--option", "colour=1"], capsys)
    assert code == 2 and "unknown option(s) ['colour']" in text


def test_representations_and_models_commands(capsys):
    code, text = run(["representations"], capsys)
    assert code == 0 and "onset_apex_flow" in text and "dynamic_images" in text
    code, text = run(["models"], capsys)
    assert code == 0 and "ststnet" in text and "1683" in text


def test_macro_pretrain_then_fine_tune(tmp_path, capsys):
    import yaml

    import microexpr

    macro = tmp_path / "macro"
    code, text = run(["macro-images", str(macro), "--subjects", "2", "--images-per-class", "4",
                      "--size", "48"], capsys)
    assert code == 0 and sorted(p.name for p in macro.iterdir()) == [
        "disgust", "happiness", "surprise"]
    weights = tmp_path / "macro.pt"
    code, text = run(["pretrain", "--images", str(macro), "--model", "deep_emotion",
                      "--epochs", "2", "--out", str(weights)], capsys)
    assert code == 0 and weights.is_file(), text
    root = microexpr.synthesize(tmp_path / "db", subjects=2, clips_per_class=1, size=48)
    out = tmp_path / "res"
    code, text = run(["evaluate", "--dataset", "casme2", "--root", str(root), "--labels",
                      "composite3", "--model", "deep_emotion", "--epochs", "2", "--init",
                      str(weights), "--freeze", "stem", "--no-cache", "--out", str(out)],
                     capsys)
    assert code == 0, text
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["init"] == {"path": str(weights), "freeze": ["stem"]}
    assert all(fold["transferred_tensors"] > 0 for fold in config["folds"])
    code, text = run(["evaluate", "--dataset", "casme2", "--root", str(root), "--labels",
                      "composite3", "--model", "ststnet", "--init", str(weights), "--no-cache"],
                     capsys)
    assert code == 2 and "deep_emotion" in text  # weights of another model are refused


def test_synth_full_frame(tmp_path, capsys):
    code, text = run(["synth", str(tmp_path / "raw"), "--subjects", "1", "--clips-per-class",
                      "1", "--full-frame"], capsys)
    assert code == 0, text
    frames = sorted((tmp_path / "raw" / "CASME2_RAW_selected" / "sub01").rglob("img*.jpg"))
    import cv2

    assert frames and cv2.imread(str(frames[0])).shape == (480, 640, 3)
