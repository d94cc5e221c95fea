"""Manifest import: reading inputs, namespacing, and errors that name the row."""

import cv2
import numpy as np
import pytest

from microexpr.data.manifest import read_manifest
from microexpr.errors import ManifestError


def _write(tmp_path, rows, header="dataset,subject,clip,label,path"):
    path = tmp_path / "inputs.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_reads_npy_and_images_and_namespaces_subjects(tmp_path):
    (tmp_path / "x").mkdir()
    np.save(tmp_path / "x" / "a.npy", np.ones((6, 5, 3), np.float32))
    cv2.imwrite(str(tmp_path / "x" / "b.png"), np.full((6, 5, 3), 7, np.uint8))
    path = _write(tmp_path, ["casme2,sub01,c1,positive,x/a.npy", "samm,006,c2,negative,x/b.png"])
    manifest = read_manifest(path)
    assert manifest.inputs.shape == (2, 6, 5, 3)
    assert manifest.inputs.dtype == np.float32
    assert list(manifest.clips["subject"]) == ["casme2/sub01", "samm/006"]
    assert manifest.classes == ("negative", "positive")
    assert manifest.inputs[1].max() == 7


def test_integer_labels_sort_numerically(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", np.zeros((4, 4, 1), np.float32))
    path = _write(tmp_path, ["d,s1,c0,10,0.npy", "d,s1,c1,2,1.npy", "d,s2,c2,02,2.npy"])
    manifest = read_manifest(path)
    assert manifest.classes == ("2", "10")
    assert list(manifest.clips["label"]) == ["10", "2", "2"]


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path, ["d,s,c,x.npy"], header="dataset,subject,clip,path")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['label'\]"):
        read_manifest(path)


def test_missing_file_names_the_row(tmp_path):
    np.save(tmp_path / "ok.npy", np.zeros((4, 4, 1), np.float32))
    path = _write(tmp_path, ["d,s1,c1,a,ok.npy", "d,s2,c2,b,gone.npy"])
    with pytest.raises(ManifestError, match=r"row 3: input file .*gone.npy does not exist"):
        read_manifest(path)


def test_inconsistent_shapes_name_the_row(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((5, 4, 3), np.float32))
    path = _write(tmp_path, ["d,s1,c1,a,a.npy", "d,s2,c2,b,b.npy"])
    with pytest.raises(ManifestError, match=r"row 3: .* has shape \(5, 4, 3\)"):
        read_manifest(path)


def test_duplicate_clip_and_empty_cell(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4, 3), np.float32))
    path = _write(tmp_path, ["d,s1,c1,a,a.npy", "d,s2,c2,b,a.npy", "d,d/s1,c1,b,a.npy"])
    with pytest.raises(ManifestError, match=r"row 4: clip 'c1' of subject 'd/s1' .* listed "
                                            r"twice, in rows 2 and 4"):
        read_manifest(path)
    path = _write(tmp_path, ["d,,c1,a,a.npy"])
    with pytest.raises(ManifestError, match="row 2: empty 'subject'"):
        read_manifest(path)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    path = _write(tmp_path, ["d,s1,c1,a,a.txt"])
    with pytest.raises(ManifestError, match="unsupported file type '.txt'"):
        read_manifest(path)
