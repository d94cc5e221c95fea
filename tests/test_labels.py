"""Label schemes and the MEGC 2019 composite built from miniature SMIC, CASME II and SAMM trees."""

import pytest

from microexpr.data.adapters import load_dataset
from microexpr.data.composite import load_composite
from microexpr.data.labels import label_schemes
from microexpr.errors import LabelSchemeError

from trees import make_casme2, make_samm, make_smic


def test_casme2_5_and_composite_mapping(tmp_path):
    data = load_dataset("casme2", make_casme2(tmp_path))
    five = data.with_labels("casme2_5")
    assert five.classes == ("happiness", "surprise", "disgust", "repression", "others")
    assert "fear" not in set(five.clips["label"]) and len(five.clips) == 6
    fear = five.problems[five.problems["message"].str.contains("drops emotion 'fear'")]
    # the clip and its spreadsheet row (header is row 1; fear is the 5th clip listed)
    assert list(fear["clip"]) == ["sub01/EP04_01"] and list(fear["row"]) == [6]
    assert fear["file"].iloc[0].endswith("CASME2-coding-20190701.xlsx")
    assert five.n_excluded == 1 and "1 clips excluded (1 left out" in five.summary()
    composite = data.with_labels("composite3")
    counts = dict(zip(composite.clips["emotion"], composite.clips["label"], strict=True))
    assert counts["disgust"] == "negative" and counts["repression"] == "negative"
    assert counts["happiness"] == "positive" and counts["surprise"] == "surprise"
    # fear and others are dropped by emotion; sub04/EP12_01f by the organisers' protocol
    assert "sub04/EP12_01f" not in set(composite.clips["clip"])
    assert len(composite.clips) == 4
    excluded = composite.problems[composite.problems["clip"] == "sub04/EP12_01f"]
    assert "excludes this clip by protocol" in excluded["message"].iloc[0]


def test_scheme_for_another_database_is_refused(tmp_path):
    data = load_dataset("casme2", make_casme2(tmp_path))
    with pytest.raises(LabelSchemeError, match="does not apply to casme2"):
        data.with_labels("samm_5")
    with pytest.raises(LabelSchemeError, match="unknown label scheme"):
        data.with_labels("nope")
    every = data.with_labels("emotion")
    assert len(every.clips) == 7 and "fear" in every.classes


def test_samm_schemes(tmp_path):
    data = load_dataset("samm", make_samm(tmp_path))
    five = data.with_labels("samm_5")
    assert sorted(five.clips["label"]) == ["anger", "contempt", "happiness", "other", "surprise"]
    composite = data.with_labels("composite3")
    assert sorted(composite.clips["label"]) == ["negative", "negative", "negative", "positive",
                                                "surprise"]


def test_composite_joins_three_databases_with_namespaced_subjects(tmp_path):
    composite = load_composite(smic=make_smic(tmp_path / "smic"),
                               casme2=make_casme2(tmp_path / "casme2"),
                               samm=make_samm(tmp_path / "samm"))
    assert composite.classes == ("negative", "positive", "surprise")
    assert set(composite.clips["dataset"]) == {"smic", "casme2", "samm"}
    assert {"smic/s1", "casme2/sub01", "samm/006"} <= set(composite.subjects)
    counts = composite.class_counts()
    assert list(counts.columns) == ["casme2", "samm", "smic", "total"]
    assert counts.loc["negative", "samm"] == 3 and counts.loc["negative", "casme2"] == 2
    assert counts.loc["total", "total"] == len(composite.clips) == 3 + 4 + 5


def test_label_schemes_table():
    table = label_schemes()
    assert {"composite3", "casme2_5", "samm_5", "smic_3", "casme3_7", "casme3_3",
            "emotion"} <= set(table["name"])
