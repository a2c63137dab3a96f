"""How many hash buckets a fastText model's word n-grams get.

fastText hashes every word n-gram (bigrams and up) into a fixed table of `bucket` rows of `dim` floats;
its default of 2,000,000 makes every model about 2M x dim x 4 bytes (520 MB at dim 64) however little it
was trained on. Rows no n-gram hashes to stay zero and only cost disk and load time, so the table is sized
to the training file: a few buckets per distinct n-gram keeps collisions rare, and large training sets
reach fastText's default, where they would be anyway."""

from pathlib import Path
from typing import Final

FASTTEXT_BUCKETS: Final = 2_000_000  # fastText's default, the most a model gets
BUCKETS_PER_NGRAM: Final = 4  # a given n-gram shares its row with another with probability ~1 - e^(-1/4) = 22%
MIN_BUCKETS: Final = 4096


def ngram_buckets(train_file: Path, word_ngrams: int, per_ngram: int = BUCKETS_PER_NGRAM,
                  cap: int = FASTTEXT_BUCKETS) -> int:
    """Buckets for the distinct word n-grams (2 to `word_ngrams` words, labels left out) of a fastText
    input file: `per_ngram` each, between MIN_BUCKETS and `cap`. Counting stops once the cap is reached, so
    memory stays bounded (cap / per_ngram hashes) whatever the file's size."""
    if word_ngrams < 2:
        return MIN_BUCKETS  # no n-grams to hash: the table is unused
    enough = cap // per_ngram
    seen: set[int] = set()
    with open(train_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = [w for w in line.split() if not w.startswith("__label__")]
            for n in range(2, word_ngrams + 1):
                seen.update(hash(g) for g in zip(*(words[i:] for i in range(n))))
            if len(seen) >= enough:
                return cap
    return max(MIN_BUCKETS, min(cap, per_ngram * len(seen)))
