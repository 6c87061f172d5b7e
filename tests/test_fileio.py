"""File safety helpers (``posetokens.fileio``): archive folders never reused, outputs never sharing a path or landing
on a user's folder, committed files with the umask's permissions, one file by any name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from posetokens import fileio
from posetokens.fileio import TempBeside, archive_path, check_fixed_outputs, check_no_overwrite, same_file


def test_archive_paths_in_one_second_are_all_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three archives made in the same second: ``<t>``, ``<t>-1``, ``<t>-2``, none an earlier one's folder (a reused
    one would mix or overwrite that run's archived files)."""
    monkeypatch.setattr(fileio.time, "strftime", lambda fmt: "20261207-081500")
    made = []
    for _ in range(3):
        dest = archive_path(tmp_path, "run")
        assert not dest.exists() and dest.parent == tmp_path / "archive"
        dest.mkdir()
        made.append(dest.name)
    assert made == ["run-20261207-081500", "run-20261207-081500-1", "run-20261207-081500-2"]


def test_two_outputs_on_one_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^two outputs would share one path: the json and the video are both "):
        check_no_overwrite({"input": tmp_path / "a.mp4"}, [("json", tmp_path / "o.json"), ("video", tmp_path / "o.json")])
    with pytest.raises(ValueError, match=r"would overwrite the input"):
        check_no_overwrite({"input": tmp_path / "a.mp4"}, [("video", tmp_path / "x" / ".." / "a.mp4")])
    check_no_overwrite({"input": tmp_path / "a.mp4"}, [("json", tmp_path / "o.json"), ("video", tmp_path / "o.mp4")])


def test_a_committed_file_has_the_umasks_permissions(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; a committed output gets what a plain write gives (0644 under umask 022)."""
    old = os.umask(0o022)
    try:
        tmp = TempBeside(tmp_path / "out.mp4")
        tmp.tmp.write_bytes(b"video")
        path = tmp.commit()
    finally:
        os.umask(old)
    assert path == tmp_path / "out.mp4" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"video" and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_fixed_outputs_refuse_a_users_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    check_fixed_outputs(tmp_path, ["empty", "absent"], False, "OUT", "choose another")  # nothing of the user's there
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'train'} exists; choose another$"):
        check_fixed_outputs(tmp_path, ["train"], False, "OUT", "choose another")
    check_fixed_outputs(tmp_path, ["train"], True, "OUT", "choose another")  # --overwrite


def test_same_file_by_any_name(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    a.write_text("{}")
    os.link(a, tmp_path / "hard.json")
    (tmp_path / "soft.json").symlink_to(a)
    assert same_file(a, tmp_path / "hard.json") and same_file(a, tmp_path / "soft.json")
    assert same_file(tmp_path / "new.json", tmp_path / "sub" / ".." / "new.json")  # not made yet: by its path
    assert not same_file(a, tmp_path / "new.json")


def test_a_named_output_is_replaced_only_when_it_holds_what_is_written(tmp_path: Path) -> None:
    """``check_replaceable``: COCO keypoint results in any key order (Detectron2 writes ``bbox`` and ``score`` before
    ``keypoints``), pretty-printed, with a UTF-8 BOM, empty (``[]``) or an empty file are replaced; a detections file
    (boxes only), ground truth (a dict), a script or a binary file are refused; so is a link whose file is gone.
    MMPose prediction files in either key order. Hand-written files."""
    import json

    from posetokens.fileio import check_replaceable, looks_like_coco_results, looks_like_mmpose_preds

    person = {"image_id": 1, "category_id": 1, "keypoints": [1.0, 2.0, 1.0], "score": 0.9}
    detectron2 = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9, "keypoints": [1.0, 2.0, 1.0]}
    ok = {"ours.json": json.dumps([person]), "d2.json": json.dumps([detectron2]), "pretty.json": json.dumps([person],
          indent=4), "bom.json": "\ufeff" + json.dumps([person]), "none.json": "[]", "empty.json": ""}
    bad = {"dets.json": json.dumps([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]),
           "gt.json": json.dumps({"images": [], "annotations": []}), "mk.py": "print(1)\n",
           "nested.json": json.dumps([{"image_id": 1, "extra": {"keypoints": [1]}}])}
    for name, text in {**ok, **bad}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for name in ok:
        check_replaceable(tmp_path / name, "--coco-results", looks_like_coco_results, "COCO results")
    for name in bad:
        with pytest.raises(ValueError, match=rf"^--coco-results \S+{name} exists and is not COCO results; choose "):
            check_replaceable(tmp_path / name, "--coco-results", looks_like_coco_results, "COCO results")
    (tmp_path / "w.pth").write_bytes(b"PK\x03\x04\x00\xff\xfe" * 10)
    with pytest.raises(ValueError, match="w.pth exists and is not"):
        check_replaceable(tmp_path / "w.pth", "--out", looks_like_coco_results, "COCO results")
    check_replaceable(tmp_path / "new.json", "--out", looks_like_coco_results, "COCO results")  # no file: fine
    (tmp_path / "gone").symlink_to(tmp_path / "moved_away.json")
    with pytest.raises(ValueError, match=r"gone is a symbolic link to \S+moved_away\.json, which does not exist"):
        check_replaceable(tmp_path / "gone", "--out", looks_like_coco_results, "COCO results")
    assert looks_like_mmpose_preds(json.dumps({"meta_info": {}, "instance_info": []}))
    assert looks_like_mmpose_preds(json.dumps({"instance_info": [{"frame_id": 1}], "meta_info": {}}))
    assert not looks_like_mmpose_preds(json.dumps({"info": {}, "meta": {"meta_info": 1}}))


def test_a_write_through_a_link_keeps_the_link(tmp_path: Path) -> None:
    """An output path that is a symbolic link to a file is written through, as ``open(path, "w")`` writes: the
    link stays and its file gets the new contents (the rename replaced the link and left the file stale)."""
    target = tmp_path / "own.json"
    target.write_text("[]")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fileio.atomic_write_text(link, "[1]")
    assert link.is_symlink() and target.read_text() == "[1]"
