"""`shard`: corpus files -> sharded TFRecords, `vocab.txt`, `rejects.jsonl` and the manifest.

- `plan.py`: pure planning over frozen `ShardSettings`: shards per split, which split a line goes to, the
  checks every run must pass, the manifest's assembly. Both runners build on it.
- `job.py`: `shard_corpus`: check the inputs, lock and empty the output directory, run the chosen runner.
- `local.py`: the runner in this process; `beam.py`: the same job as an Apache Beam pipeline.
- `writer.py`: atomic, round-robin TFRecord writing and the shards' descriptions.
- `output_dir.py`: the output directory: one writer at a time, only reviewflow's files deleted.
"""
