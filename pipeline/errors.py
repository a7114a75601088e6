"""Errors a user can act on; the CLI turns them into clean messages and a non-zero exit."""


class ReviewflowError(Exception):
    """Base class: the message names the file, the place and the fix."""


class SourceError(ReviewflowError):
    """An input file cannot be read to the end (missing, truncated, corrupt)."""


class DatasetError(ReviewflowError):
    """A data directory is missing, incomplete, locked or not what was expected."""
