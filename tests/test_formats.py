"""Label csv, segment csv and json datafile: round trips, the real AudioSet files, bad input."""

import json

import pytest

from atdr.data.datafile import Clip, read_datafile, write_datafile
from atdr.data.labels import LabelSet
from atdr.data.segments import Segment, read_segments, write_segments
from atdr.errors import AtdrError


def test_label_csv_round_trip_keeps_quoted_names_with_commas(tmp_path):
    labels = LabelSet(("/m/a", "/m/b", "/t/c"), ('Male speech, man speaking', 'Say "hi"', "Tick"))
    labels.write(tmp_path / "labels.csv")
    assert LabelSet.read(tmp_path / "labels.csv") == labels
    assert (tmp_path / "labels.csv").read_text().splitlines()[1] == '0,/m/a,"Male speech, man speaking"'


def test_real_class_labels_csv(audioset_fixtures):
    labels = LabelSet.read(audioset_fixtures / "class_labels_indices.csv")
    assert len(labels) == 527
    assert labels.mids[0] == "/m/09x0r" and labels.names[0] == "Speech"
    assert labels.names[1] == "Male speech, man speaking"
    assert labels.index["/m/01v_m0"] == 501 and labels.names[501] == "Sine wave"
    assert labels.encode(["/m/09x0r", "/m/01v_m0"]).sum() == 2


def test_label_csv_writer_reproduces_the_official_file(audioset_fixtures, tmp_path):
    labels = LabelSet.read(audioset_fixtures / "class_labels_indices.csv")
    labels.write(tmp_path / "out.csv")
    official = (audioset_fixtures / "class_labels_indices.csv").read_text().replace("\r\n", "\n")
    assert (tmp_path / "out.csv").read_text() == official


@pytest.mark.parametrize(
    "text, message",
    [
        ("idx,mid,name\n0,/m/a,A\n", "expected the header"),
        ("index,mid,display_name\n0,/m/a,A\n2,/m/b,B\n", "without gaps"),
        ("index,mid,display_name\n0,/m/a,A\n1,/m/a,B\n", "appears twice"),
        ("index,mid,display_name\n0,/m/a,Male speech, man speaking\n", "quote names"),
        ("index,mid,display_name\n", "no classes"),
    ],
)
def test_bad_label_csv(tmp_path, text, message):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(AtdrError, match=message):
        LabelSet.read(tmp_path / "l.csv")


def test_real_segment_lists(audioset_fixtures):
    bal = read_segments(audioset_fixtures / "balanced_train_segments.csv")
    assert len(bal) == 22160  # the header's num_segs
    assert bal[0] == Segment("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088"))
    assert sum(len(s.labels) for s in bal) == 52882  # the header's num_positive_labels
    ev = read_segments(audioset_fixtures / "eval_segments.csv")
    assert len(ev) > 20000 and all(s.end - s.start <= 10.0 for s in ev)


def test_segment_round_trip_matches_official_layout(tmp_path):
    segs = [Segment("--abc_DEF12", 30.0, 40.0, ("/m/09x0r", "/t/dd00088")), Segment("x" * 11, 0.0, 10.0, ("/m/a",))]
    write_segments(tmp_path / "s.csv", segs)
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[1] == "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3"
    assert lines[3] == '--abc_DEF12, 30.000, 40.000, "/m/09x0r,/t/dd00088"'
    assert read_segments(tmp_path / "s.csv") == segs


def test_segment_list_with_a_plain_csv_header(tmp_path):
    """As written by a spreadsheet or pandas: one header line instead of AudioSet's three comments."""
    (tmp_path / "s.csv").write_text('YTID,start_seconds,end_seconds,positive_labels\n'
                                    'dog_01,0,10,/m/0bt9lr\nstreet_7,2.5,7.5,"/m/0bt9lr,/m/012f08"\n')
    assert read_segments(tmp_path / "s.csv") == [Segment("dog_01", 0.0, 10.0, ("/m/0bt9lr",)),
                                                 Segment("street_7", 2.5, 7.5, ("/m/0bt9lr", "/m/012f08"))]


@pytest.mark.parametrize("text, message", [
    ("a,0,10\n", r"s.csv:1: expected 4 columns, YTID, start_seconds, end_seconds, \"label,label,...\".*found 3"),
    ("# c\na, 0, 10, /m/a,/m/b\n", r"s.csv:2: expected 4 columns.*found 5 \(quote the labels when there are several\)"),
    ("YTID,start_seconds,end_seconds,positive_labels\na,zero,10,/m/a\n",
     r"s.csv:2: start and end must be seconds, YTID, .*found 'zero', '10'"),
    ("a,0,10,\n", "s.csv:1: segment a has no positive labels"),
    ("id,start,end,labels\na,0,10,/m/a\n", r"s.csv:1: start and end must be seconds"),
    ("# only comments\n", r"s.csv: no segments \(expected lines YTID"),
])
def test_malformed_segment_lines_say_what_was_expected(tmp_path, text, message):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(AtdrError, match=message):
        read_segments(tmp_path / "s.csv")


def test_datafile_round_trip_relative_paths_and_extra_keys(tmp_path):
    (tmp_path / "audio").mkdir()
    for name in ("a.wav", "--b.wav"):
        (tmp_path / "audio" / name).write_bytes(b"")
    clips = [
        Clip(str(tmp_path / "audio" / "a.wav"), ("/m/a",), {"video_id": "a"}),
        Clip(str(tmp_path / "audio" / "--b.wav"), ("/m/a", "/m/b"), {}),
    ]
    write_datafile(tmp_path / "d.json", clips)
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["data"][0] == {"video_id": "a", "wav": "audio/a.wav", "labels": "/m/a"}
    assert doc["data"][1]["labels"] == "/m/a,/m/b"
    back = read_datafile(tmp_path / "d.json", LabelSet.from_mids(["/m/a", "/m/b"]))
    assert back == clips and back[0].extra == {"video_id": "a"}


def test_original_sample_datafile_with_leading_comment(audioset_fixtures):
    clips = read_datafile(audioset_fixtures / "sample_train_data.json", check_files=False)
    assert clips[0].wav == "/data/sls/audioset/data/audio/eval/_/_/--4gqARaEJE_0.000.flac"
    assert clips[0].labels == ("/m/068hy", "/m/07q6cd_", "/m/0bt9lr", "/m/0jbk")
    assert clips[0].extra["video_id"] == "--4gqARaEJE"
    labels = LabelSet.read(audioset_fixtures / "class_labels_indices.csv")
    assert len(read_datafile(audioset_fixtures / "sample_eval_data.json", labels, check_files=False)) > 0


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"data": [', r"d.json:1:\d+: malformed json"),
        ('# comment\n{"data": [}', r"d.json:2:\d+: malformed json"),
        ('{"data": []}', "the dataset is empty"),
        ('[1, 2]', 'expected an object with a "data" list'),
        ('{"data": [{"labels": "/m/a"}]}', "entry 0: missing 'wav'"),
        ('{"data": [{"wav": "x.wav", "labels": ""}]}', r"entry 0 \(x.wav\): missing 'labels'"),
        ('{"data": [{"wav": "x.wav", "labels": "/m/a,/m/zz"}]}', r"entry 0 \(x.wav\): unknown label id '/m/zz'"),
    ],
)
def test_bad_datafiles(tmp_path, content, message):
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(AtdrError, match=message):
        read_datafile(tmp_path / "d.json", LabelSet.from_mids(["/m/a"]), check_files=False)


def test_missing_audio_names_the_entry_and_counts_the_rest(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"data": [{"wav": f"{i}.wav", "labels": "/m/a"} for i in range(3)]}))
    (tmp_path / "0.wav").write_bytes(b"")
    with pytest.raises(AtdrError, match=r"entry 1: audio file not found: .*1\.wav \(and 1 more missing\)"):
        read_datafile(tmp_path / "d.json")


def test_duplicate_datafile_entries_are_reported(tmp_path, caplog):
    entries = [{"wav": name, "labels": "/m/a"} for name in ("a.wav", "b.wav", "./a.wav", "c.wav", "b.wav", "a.wav")]
    (tmp_path / "d.json").write_text(json.dumps({"data": entries}))
    assert len(read_datafile(tmp_path / "d.json", check_files=False)) == 6
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "d.json: 2 audio file(s) appear in more than one entry" in warning and "a.wav: 3 times" in warning


def test_unreadable_datafile(tmp_path):
    with pytest.raises(AtdrError, match="cannot read datafile"):
        read_datafile(tmp_path / "nope.json")


def test_datafile_written_from_a_relative_working_directory_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw" / "audio").mkdir(parents=True)
    (tmp_path / "raw" / "audio" / "a.wav").write_bytes(b"")
    write_datafile("raw/d.json", [Clip("raw/audio/a.wav", ("/m/a",))])
    assert json.loads((tmp_path / "raw" / "d.json").read_text())["data"][0]["wav"] == "audio/a.wav"
    assert read_datafile("raw/d.json")[0].wav == "raw/audio/a.wav"
