"""An Amazon-like synthetic corpus in the real files' exact fastText format.

The language is fixed (the same words and sentiment words for every seed, so a
train and a test file made with different seeds match); the seed only drives
sampling. In the default `simple` style sentiment is carried by single words,
with noise: a bag of words learns it well but not perfectly. The `hard` style
adds what real reviews have: negation that flips a phrase ("not great", "never
disappointed"), contrast where the clause after "but"/"however" decides, and
intensifiers; half of its reviews need word order to be read right.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import zlib
from pathlib import Path

import numpy as np

from pipeline import atomic

LANGUAGE_SEED = 20231
NUM_NEUTRAL_WORDS = 30_000
NUM_SENTIMENT_WORDS = 300             # per polarity
ZIPF_EXPONENT = 1.07
LENGTH_SIGMA = 0.75                   # lognormal spread of review length: a long tail
MAX_WORDS = 1_500
SENTIMENT_RATE = 0.05                 # share of body words that carry sentiment
SENTIMENT_AGREEMENT = 0.75            # chance a sentiment word matches the label
STAR_SENTIMENT_RATE = 0.15            # star ratings: a star is read from the balance of many sentiment words
STAR_SENTIMENT_AGREEMENT = 0.9        # star ratings: the lowest star's words are this negative, the highest's positive
TITLE_SENTIMENT_RATE = 0.6            # chance the title carries a sentiment word
LABEL_NOISE = 0.03                    # labels flipped outright, as in real ratings
BLOCK_LINES = 2_000

POSITIVE_SEEDS = ["great", "excellent", "love", "loved", "perfect", "wonderful", "best", "amazing",
                  "recommend", "superb", "fantastic", "happy", "beautiful", "works", "délicieux"]
NEGATIVE_SEEDS = ["terrible", "awful", "waste", "broke", "worst", "poor", "disappointed", "refund",
                  "boring", "useless", "horrible", "junk", "returned", "defective", "mauvais"]
ACCENTED_WORDS = ["café", "naïve", "crème", "über", "señor", "façade", "résumé", "jalapeño", "Zürich"]
SYLLABLES = ["ka", "lo", "mi", "ten", "ra", "su", "vo", "ne", "tri", "pa", "de", "sho", "gu", "li",
             "ber", "an", "ok", "um", "el", "sta", "qui", "ro", "ze", "fy", "wa", "ex", "ion", "ly"]
PUNCTUATION = [",", ".", "!", "?", ";"]

STYLES = ("simple", "hard")
NEGATORS = ["not", "never", "hardly", "no longer"]
INTENSIFIERS = ["very", "really", "extremely", "so", "absolutely"]
CONTRASTS = ["but", "however,"]
HARD_SENTIMENT_WORDS = 12             # hard style: the most frequent sentiment words of each polarity
NEGATION_RATE = 0.4                   # hard style: share of sentiment phrases that are negated
CONTRAST_RATE = 0.4                   # hard style: share of reviews "X ... but Y", where Y decides
INTENSIFIER_RATE = 0.3

BAD_LINE_KINDS = ("no_label", "bad_label", "glued_label", "empty_text", "invalid_utf8", "nul_byte")


@dataclasses.dataclass(frozen=True)
class Language:
    words: np.ndarray           # neutral words, most frequent first
    word_probs: np.ndarray
    sentiment: tuple[np.ndarray, np.ndarray]  # negative words, positive words
    sentiment_probs: np.ndarray


def zipf_probs(size: int) -> np.ndarray:
    weights = 1.0 / np.power(np.arange(size) + 2.7, ZIPF_EXPONENT)
    return weights / weights.sum()


def _pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """`count` new words of one to four syllables, none already in `taken`."""
    words = []
    while len(words) < count:
        lengths = rng.integers(1, 5, size=count)
        syllables = rng.integers(len(SYLLABLES), size=(count, 4))
        for length, row in zip(lengths.tolist(), syllables.tolist()):
            word = "".join(SYLLABLES[i] for i in row[:length])
            if word not in taken and len(words) < count:
                taken.add(word)
                words.append(word)
    return words


def make_language() -> Language:
    """The fixed vocabulary of the synthetic corpus."""
    rng = np.random.default_rng(LANGUAGE_SEED)
    taken = set(POSITIVE_SEEDS + NEGATIVE_SEEDS + ACCENTED_WORDS)
    neutral = ["the", "a", "and", "it", "is", "this", "i", "to", "of", "for"] + ACCENTED_WORDS
    neutral += _pseudo_words(rng, NUM_NEUTRAL_WORDS - len(neutral), taken)
    negative = NEGATIVE_SEEDS + _pseudo_words(rng, NUM_SENTIMENT_WORDS - len(NEGATIVE_SEEDS), taken)
    positive = POSITIVE_SEEDS + _pseudo_words(rng, NUM_SENTIMENT_WORDS - len(POSITIVE_SEEDS), taken)
    return Language(np.array(neutral), zipf_probs(len(neutral)),
                    (np.array(negative), np.array(positive)), zipf_probs(NUM_SENTIMENT_WORDS))


def _sample(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn from the distribution with cumulative probabilities `cdf`."""
    return np.minimum(np.searchsorted(cdf, rng.random(size)), len(cdf) - 1)


def _sentiment_words(rng, language, labels: np.ndarray, agreement: float) -> np.ndarray:
    """One sentiment word per label: its own polarity with probability `agreement`, else the other.

    Float labels (star ratings) are each word's chance of being positive instead.
    """
    if labels.dtype.kind == "f":
        polarity = (rng.random(len(labels)) < labels).astype(int)
    else:
        polarity = np.where(rng.random(len(labels)) < agreement, labels, 1 - labels)
    index = _sample(rng, np.cumsum(language.sentiment_probs), len(labels))
    return np.where(polarity == 1, language.sentiment[1][index], language.sentiment[0][index])


def _texts(rng, language, labels: np.ndarray, lengths: np.ndarray, sentiment_rate: float,
           vocabulary_cdf: np.ndarray, forced: np.ndarray, agreement: float) -> list[list[str]]:
    """Word lists of the given lengths: Zipf words, some swapped for sentiment words.

    Texts where `forced` is true get at least one sentiment word.
    """
    total = int(lengths.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    words = language.words[_sample(rng, vocabulary_cdf, total)].astype(object)
    carries = rng.random(total) < sentiment_rate
    carries[(starts + (rng.random(len(lengths)) * lengths).astype(int))[forced]] = True
    owner_labels = np.repeat(labels, lengths)
    words[carries] = _sentiment_words(rng, language, owner_labels[carries], agreement)
    punctuated = rng.random(total) < 1 / 12
    words[punctuated] = words[punctuated] + rng.choice(PUNCTUATION, size=int(punctuated.sum()))
    words = words.tolist()
    return [words[start:start + length] for start, length in zip(starts.tolist(), lengths.tolist())]


def make_reviews(rng: np.random.Generator, language: Language, labels: np.ndarray,
                 mean_words: float, agreement: float = SENTIMENT_AGREEMENT,
                 sentiment_rate: float = SENTIMENT_RATE) -> list[str]:
    """`Title: body` for reviews of the given (true) labels."""
    median = mean_words / np.exp(LENGTH_SIGMA ** 2 / 2)
    lengths = np.clip(rng.lognormal(np.log(median), LENGTH_SIGMA, len(labels)), 2, MAX_WORDS).astype(int)
    cdf = np.cumsum(language.word_probs)
    # Every body has a sentiment word, so that even the shortest review has signal.
    bodies = _texts(rng, language, labels, lengths, sentiment_rate, cdf, np.ones(len(labels), bool),
                    agreement)
    title_lengths = rng.integers(1, 5, size=len(labels))
    titles = _texts(rng, language, labels, title_lengths, 0.0, cdf[:2000] / cdf[1999],
                    rng.random(len(labels)) < TITLE_SENTIMENT_RATE, agreement)
    return [" ".join(title).capitalize() + ": " + " ".join(body).capitalize() + "."
            for title, body in zip(titles, bodies)]


def _filler(rng, language, cdf, count: int) -> list[str]:
    return language.words[_sample(rng, cdf, count)].tolist() if count > 0 else []


def _phrase(rng, language, expressed: int) -> list[str]:
    """Words that express `expressed` (1 positive): a sentiment word, negated (of the other polarity) or not."""
    negated = rng.random() < NEGATION_RATE
    polarity = 1 - expressed if negated else expressed
    index = _sample(rng, np.cumsum(zipf_probs(HARD_SENTIMENT_WORDS)), 1)[0]
    words = [language.sentiment[polarity][index]]
    if rng.random() < INTENSIFIER_RATE:
        words.insert(0, INTENSIFIERS[rng.integers(len(INTENSIFIERS))])
    if negated:
        words.insert(0, NEGATORS[rng.integers(len(NEGATORS))])
    return words


def _clause(rng, language, cdf, expressed: int, num_words: int, num_phrases: int) -> list[str]:
    """Filler words with `num_phrases` sentiment phrases that each express `expressed`."""
    words = _filler(rng, language, cdf, num_words)
    for _ in range(num_phrases):
        at = int(rng.integers(0, len(words) + 1))
        words[at:at] = _phrase(rng, language, expressed)
    return words


def make_hard_reviews(rng: np.random.Generator, language: Language, labels: np.ndarray, mean_words: float,
                      agreement: float = SENTIMENT_AGREEMENT) -> list[str]:
    """`Title: body` where negation flips phrases and, in contrast reviews, the clause after "but" decides.

    A contrast review's first clause expresses the other label, so its words
    alone say little; its label is in which clause comes last. Every phrase
    expresses what its place says (`agreement` is the simple style's noise;
    here the noise is in the structure, and in the label noise).
    """
    median = mean_words / np.exp(LENGTH_SIGMA ** 2 / 2)
    lengths = np.clip(rng.lognormal(np.log(median), LENGTH_SIGMA, len(labels)), 4, MAX_WORDS).astype(int)
    cdf = np.cumsum(language.word_probs)
    reviews = []
    for label, length in zip(labels.tolist(), lengths.tolist()):
        if rng.random() < CONTRAST_RATE:
            first = _clause(rng, language, cdf, 1 - label, length // 2, 1)
            gap = _filler(rng, language, cdf, int(rng.integers(0, 3)))  # words between "but" and what decides
            last = gap + _phrase(rng, language, label) + _filler(rng, language, cdf, length - length // 2 - len(gap))
            body = first + [CONTRASTS[rng.integers(len(CONTRASTS))]] + last
        else:
            body = _clause(rng, language, cdf, label, length, 1 + int(length > 30))
        title = _filler(rng, language, cdf[:2000] / cdf[1999], int(rng.integers(1, 4)))
        reviews.append(" ".join(title).capitalize() + ": " + " ".join(body).capitalize() + ".")
    return reviews


def make_bad_line(rng: np.random.Generator, review: str) -> bytes:
    """A malformed line of a random kind, for testing the rejects."""
    kind = BAD_LINE_KINDS[rng.integers(len(BAD_LINE_KINDS))]
    body = review.encode("utf-8")
    return {
        "no_label": body,
        # a label of its own per line (no rng draw: the corpus stays as it was), rare, so never a class
        "bad_label": b"__label__%d " % (3 + zlib.crc32(body) % 1_000_000) + body,
        "glued_label": b"__label__2" + body,
        "empty_text": b"__label__1 ",
        "invalid_utf8": b"__label__2 " + body[:20] + b"\xff\xfe" + body[20:],
        "nul_byte": b"__label__1 " + body[:10] + b"\x00" + body[10:],
    }[kind]


def generate_lines(num_lines: int, seed: int, mean_words: float = 80.0, bad_fraction: float = 0.0,
                   agreement: float = SENTIMENT_AGREEMENT, label_noise: float = LABEL_NOISE, style: str = "simple",
                   positive_share: float = 0.5):
    """Yield the corpus's lines as bytes (with newline), deterministic for a seed.

    `agreement` is the chance that a sentiment word matches the review's label,
    `label_noise` the share of labels flipped: together they set how hard it is.
    `style` is "simple" (sentiment in single words) or "hard" (negation, contrast).
    `positive_share`: the share of positive reviews (before label noise); real small corpora are rarely balanced.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    make = make_hard_reviews if style == "hard" else make_reviews
    language = make_language()
    rng = np.random.default_rng(seed)
    for block_start in range(0, num_lines, BLOCK_LINES):
        size = min(BLOCK_LINES, num_lines - block_start)
        # Balanced corpora keep the draw they always had: same seed, same bytes.
        true_labels = (rng.integers(2, size=size) if positive_share == 0.5 else
                       (rng.random(size) < positive_share).astype(np.int64))
        reviews = make(rng, language, true_labels, mean_words, agreement)
        flipped = rng.random(size) < label_noise
        bad = rng.random(size) < bad_fraction
        for review, label, is_flipped, is_bad in zip(reviews, true_labels.tolist(), flipped.tolist(), bad.tolist()):
            if is_bad:
                yield make_bad_line(rng, review) + b"\n"
            else:
                yield f"__label__{(1 - label if is_flipped else label) + 1} {review}\n".encode("utf-8")


def star_positivity(stars: np.ndarray, num_classes: int, agreement: float) -> np.ndarray:
    """A star's chance that a sentiment word is positive: 1 - agreement for the lowest, agreement for the highest,
    evenly between, so neighbouring stars are harder to tell apart than distant ones."""
    return (1 - agreement) + (2 * agreement - 1) * stars / (num_classes - 1)


def generate_star_lines(num_lines: int, seed: int, num_classes: int = 5, mean_words: float = 80.0,
                        bad_fraction: float = 0.0, agreement: float = STAR_SENTIMENT_AGREEMENT,
                        label_noise: float = LABEL_NOISE):
    """A star-rating corpus, `__label__1` .. `__label__N` (as Amazon and Yelp Full), deterministic for a seed.

    Label noise moves a rating to a neighbouring star, as real raters disagree by one star, not by four.
    """
    if num_classes < 3:
        raise ValueError(f"star ratings need 3 or more classes, got {num_classes}")
    language = make_language()
    rng = np.random.default_rng(seed)
    for block_start in range(0, num_lines, BLOCK_LINES):
        size = min(BLOCK_LINES, num_lines - block_start)
        stars = rng.integers(num_classes, size=size)
        reviews = make_reviews(rng, language, star_positivity(stars, num_classes, agreement), mean_words,
                               sentiment_rate=STAR_SENTIMENT_RATE)
        moved = np.where(rng.random(size) < label_noise, rng.choice([-1, 1], size=size), 0)
        shown = np.clip(stars + moved, 0, num_classes - 1)
        bad = rng.random(size) < bad_fraction
        for review, star, is_bad in zip(reviews, shown.tolist(), bad.tolist()):
            if is_bad:
                yield make_bad_line(rng, review) + b"\n"
            else:
                yield f"__label__{star + 1} {review}\n".encode("utf-8")


def _open_compressed(path: Path, temporary: Path):
    if path.suffix == ".bz2":
        return bz2.open(temporary, "wb", compresslevel=9)
    if path.suffix == ".gz":
        return gzip.GzipFile(temporary, "wb", mtime=0)  # mtime=0: same bytes every run
    return open(temporary, "wb")


def write_corpus(path: Path, num_lines: int, seed: int, mean_words: float = 80.0,
                 bad_fraction: float = 0.0, agreement: float = SENTIMENT_AGREEMENT,
                 label_noise: float = LABEL_NOISE, style: str = "simple", positive_share: float = 0.5,
                 num_classes: int = 2) -> Path:
    """Write a synthetic corpus (two classes, or `num_classes` star ratings); compressed by the name's suffix."""
    if num_classes != 2:
        lines = generate_star_lines(num_lines, seed, num_classes, mean_words, bad_fraction, agreement, label_noise)
    else:
        lines = generate_lines(num_lines, seed, mean_words, bad_fraction, agreement, label_noise, style,
                               positive_share)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = atomic.incomplete_path(path)
    try:
        with _open_compressed(path, temporary) as f:
            for line in lines:
                f.write(line)
        atomic.commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
