import bz2
import gzip
import io
import os
import threading
import tracemalloc

import pytest

from pipeline.errors import SourceError
from pipeline.sources import LineReader, TooLongLine, compression_of, stream_lines

LINES = [b"__label__1 first", b"__label__2 caf\xc3\xa9 second", b"", b"__label__1 last"]
CONTENT = b"\n".join(LINES) + b"\n"


def write(path, data):
    if path.suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    elif path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, parallelism", [
    ("c.txt", 1), ("c.txt.gz", 1), ("c.txt.bz2", 1), ("c.txt.bz2", 2)])
def test_reads_every_line_of_each_format(tmp_path, name, parallelism):
    reader = LineReader(write(tmp_path / name, CONTENT), parallelism=parallelism, chunk_bytes=7)
    assert list(reader) == LINES
    assert reader.lines_read == 4
    assert reader.bytes_read == len(CONTENT)


def test_last_line_without_newline_and_bom(tmp_path):
    path = write(tmp_path / "c.txt", b"\xef\xbb\xbf__label__1 a\n__label__2 b")
    assert list(LineReader(path)) == [b"__label__1 a", b"__label__2 b"]


@pytest.mark.parametrize("chunk_bytes", [3, 10, 64, 1 << 20])
def test_over_long_lines_are_bounded_at_any_chunk_size(tmp_path, chunk_bytes):
    long_line = b"__label__1 " + b"x" * 100
    path = write(tmp_path / "c.txt", b"__label__1 ok\n" + long_line + b"\n__label__2 ok\n" + long_line)
    lines = list(LineReader(path, max_line_bytes=40, chunk_bytes=chunk_bytes))
    assert lines == [b"__label__1 ok", TooLongLine(long_line[:40], len(long_line)),
                     b"__label__2 ok", TooLongLine(long_line[:40], len(long_line))]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_truncated_bz2_names_file_and_position(tmp_path, parallelism):
    data = bz2.compress(b"".join(b"__label__1 line %d with some words\n" % i for i in range(20000)))
    path = tmp_path / "cut.txt.bz2"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.txt\.bz2.*truncated or corrupt after line [\d,]+"):
        list(LineReader(path, parallelism=parallelism))


def test_misnamed_compressed_file_is_refused(tmp_path):
    path = write(tmp_path / "plain.txt.bz2", b"not compressed\n")
    path.write_bytes(b"not compressed\n")
    with pytest.raises(SourceError, match="magic bytes"):
        compression_of(path)


def test_stream_lines_cuts_each_line_at_the_limit_and_keeps_the_next():
    data = b"\xef\xbb\xbfabcde\r\nnine bytes\n" + b"x" * 40 + b"\n\ncrlf\r\nlast"
    assert list(stream_lines(io.BytesIO(data), 8)) == [b"abcde", b"nine byt", b"x" * 8, b"", b"crlf", b"last"]


def test_one_hostile_line_on_a_pipe_is_never_held_whole():
    """A 64 MiB line then a review, written into a real pipe: read with memory far under the line's size."""
    reader_end, writer_end = os.pipe()

    def write():
        with os.fdopen(writer_end, "wb") as pipe:
            for _ in range(64):
                pipe.write(b"y" * (1 << 20))
            pipe.write(b"\nthe next review\n")

    writer = threading.Thread(target=write)
    writer.start()
    tracemalloc.start()
    try:
        with os.fdopen(reader_end, "rb") as pipe:
            lines = [(len(line), line[:16]) for line in stream_lines(pipe)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        writer.join()
    assert lines == [(1 << 20, b"y" * 16), (15, b"the next review")]
    assert peak < 8 << 20, f"{peak:,} bytes held reading a 64 MiB line"


def test_a_pipe_is_named_so_not_missing(tmp_path):
    """`shard --train <(zcat ...)` and `predict --file /dev/stdin` were "no such file": they exist, and the fix
    is another (a file; predict's standard input)."""
    from click.testing import CliRunner

    import cli

    pipe = tmp_path / "reviews.fifo"
    os.mkfifo(pipe)
    corpus = tmp_path / "test.ft.txt"
    corpus.write_text("__label__2 great\n")
    for args in (["shard", "--train", str(pipe), "--test", str(corpus), "--out", str(tmp_path / "data")],
                 ["stats", str(pipe)]):
        result = CliRunner().invoke(cli.cli, args)
        assert result.exit_code == 1 and "not a regular file (a pipe or a device)" in result.output, \
            result.output
    missing = CliRunner().invoke(cli.cli, ["shard", "--train", str(tmp_path / "gone.txt"), "--test", str(corpus),
                                           "--out", str(tmp_path / "data")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
    assert not (tmp_path / "data").exists()
