"""reviewflow's data pipeline: sources, parsing, tokenization, shards, manifest, datasets."""
