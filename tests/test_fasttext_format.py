import pytest

from pipeline.fasttext_format import Reject, parse_line
from pipeline.sources import TooLongLine


@pytest.mark.parametrize("line, expected", [
    (b"__label__1 Bad: it broke", ("1", b"Bad: it broke")),
    (b"__label__2 Great: caf\xc3\xa9", ("2", b"Great: caf\xc3\xa9")),
    (b"__label__2 windows ending\r", ("2", b"windows ending")),
    (b"__label__2\ttab separated", ("2", b"tab separated")),
    (b"__label__1   padded  ", ("1", b"padded")),
    # Any name is a label here; whether it is a class is the class table's call (tests/test_labels.py, and
    # tests/test_shard_corpus.py: a rare __label__3 / 2x / 2Great is rejected as bad_label when sharding).
    (b"__label__3 three stars", ("3", b"three stars")),
    (b"__label__positive fine", ("positive", b"fine")),
])
def test_good_lines(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line, reason", [
    (b"no label here", Reject.NO_LABEL),
    (b"", Reject.NO_LABEL),
    (b"__label__", Reject.BAD_LABEL),
    (b"__label__ \t", Reject.BAD_LABEL),
    (b"__label__1 ", Reject.EMPTY_TEXT),
    (b"__label__1", Reject.EMPTY_TEXT),
    (b"__label__1 \r", Reject.EMPTY_TEXT),
    (b"__label__2 bad \xff\xfe bytes", Reject.INVALID_UTF8),
    (b"__label__2 nul \x00 byte", Reject.NUL_BYTE),
    (TooLongLine(b"__label__1 x", 10**8), Reject.LINE_TOO_LONG),
])
def test_bad_lines_are_rejected_with_reason(line, reason):
    assert parse_line(line) == reason
