"""`shard`: check the sources, lock and empty the output directory, then run the chosen runner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline import manifest as manifest_lib
from pipeline.shard import output_dir
from pipeline.shard import plan as shard_plan
from pipeline.errors import ReviewflowError
from pipeline.shard.plan import ShardSettings


def shard_corpus(settings: ShardSettings, progress: bool = False) -> manifest_lib.Manifest:
    """Run the whole shard job; on any error nothing is left that looks complete."""
    settings.check_runner_reads()
    shard_plan.check_sources(settings)
    shard_plan.check_open_files(settings)
    out = Path(settings.out)
    # Before the lock file is made: a user's folder stays as it was.
    output_dir.check_output_dir(out, settings.overwrite)
    made = output_dir.directories_to_make(out)
    was_empty = output_dir.is_empty_directory(out)
    lock_taken = False
    try:
        with output_dir.locked(out):
            lock_taken = True
            try:
                output_dir.prepare_output_dir(out, settings.overwrite)
                return run_shard_job(settings, out, progress)
            except BaseException:
                # "Nothing was written": not even the directories this run made, nor its marks in an empty one
                # the user made (the failed run emptied them of its files). Under the lock: once it is released,
                # another run may claim the directory, and its marker and lock would go with ours.
                output_dir.remove_if_bare(made, out if was_empty else None)
                raise
    except BaseException:
        if not lock_taken:  # another run holds it, or a mkdir failed: only the empty directories this one made
            output_dir.remove_empty(made)
        raise


def run_shard_job(settings: ShardSettings, out: Path, progress: bool) -> manifest_lib.Manifest:
    """The chosen runner's pass over the sources, into the prepared and locked `out`."""
    if settings.runner == "beam":
        if importlib.util.find_spec("apache_beam") is None:
            raise ReviewflowError("--runner beam needs Apache Beam, an optional extra: pip install -e '.[beam]'.")
        from pipeline.shard import beam as beam_shard  # imports Beam: only when asked for

        return beam_shard.shard_with_beam(settings, out)
    from pipeline.shard import local as local_shard

    return local_shard.shard_locally(settings, out, progress)
