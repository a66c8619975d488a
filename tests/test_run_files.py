"""The run folder's one reader of JSON and JSON-lines files (runfolder.read_json, read_jsonl):
every damaged file is one RunFolderError naming the file, the line and what was expected; no
reader skips history silently. (Issue 9, class 9.)"""
import pytest

from minitransformer.errors import RunFolderError
from minitransformer.training.runfolder import read_json, read_jsonl

# (file content, words the one-line error must hold besides the file name)
BAD_JSONL = [
    (b'{"step": 0}\n{"step": 1\n{"step": 2}\n', ["line 2", "not valid JSON"]),
    (b'{"step": 0}\n\xff\xfe{"step": 1}\n', ["line 2", "0xff", "not UTF-8"]),
    (b'{"step": 0}\n\n{"step": 2}\n', ["line 2", "not valid JSON"]),
    (b'{"step": 0}\n[1, 2]\n', ["line 2", "expected a JSON object"]),
    (b'{"step": 0}\n{"loss": 1.0}\n', ["line 2", "'step'"]),
    (b'\x00\x00\x00\n', ["line 1", "not valid JSON"]),
]
BAD_JSON = [
    (b"", ["line 1 column 1", "not valid JSON"]),
    (b'{"train": {}, "model": {}', ["line 1", "not valid JSON"]),
    (b'{"train": {},\n "model": \xc3\x28}', ["line 2", "not UTF-8"]),
    (b'["train", "model"]', ["expected a JSON object"]),
    (b'{"train": {}}', ["key 'model' is missing"]),
]


@pytest.mark.parametrize("content,words", BAD_JSONL)
def test_damaged_jsonl_line_is_named(tmp_path, content, words):
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(content)
    with pytest.raises(RunFolderError) as e:
        read_jsonl(p, keys=("step",))
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("content,words", BAD_JSON)
def test_damaged_json_is_named(tmp_path, content, words):
    p = tmp_path / "config.json"
    p.write_bytes(content)
    with pytest.raises(RunFolderError) as e:
        read_json(p, keys=("train", "model"))
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    for w in words:
        assert w in msg


def test_cut_last_line_is_a_write_in_progress(tmp_path):
    """Only a last line without its newline (a killed writer) is left out; the rest is kept."""
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(b'{"step": 0}\n{"step": 1}\n{"ste')
    assert read_jsonl(p) == [{"step": 0}, {"step": 1}]
    p.write_bytes(b'{"step": 0}\n{"step": 1}\n')
    assert read_jsonl(p, keys=("step",)) == [{"step": 0}, {"step": 1}]


def test_missing_file_is_named(tmp_path):
    for reader in (read_json, read_jsonl):
        with pytest.raises(RunFolderError, match="nothere"):
            reader(tmp_path / "nothere")
