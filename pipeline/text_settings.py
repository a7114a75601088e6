"""Text settings that are plain data, so that `--help` and the run plan read them without TensorFlow.

`pipeline/text.py` tokenizes with them.
"""

# `shard --vocab-size`: padding + [UNK] + 32766 words. Each model takes the most frequent of them it uses (its
# spec's vocab_size: the bag models all, the sequence models 8192); on IMDB, linear gained 0.2 points from 8192
# to this.
SHARD_VOCAB_SIZE = 32768
NUM_SPECIAL_TOKENS = 2      # "" (padding, id 0) and "[UNK]" (id 1)

# Which tokens of a review longer than --max-len are kept. head: the first (the studies' cut); tail: the last;
# head_tail: the first quarter and the last three quarters, as Sun et al. (2019, "How to Fine-Tune BERT for Text
# Classification") kept 128 + 382 of 512 tokens on IMDB: openings set the scene, endings hold the verdict.
TRUNCATIONS = ("head", "tail", "head_tail")
HEAD_SHARE = {"head": 1.0, "tail": 0.0, "head_tail": 0.25}   # the share of kept tokens taken from the start
DEFAULT_TRUNCATE = "head_tail"
