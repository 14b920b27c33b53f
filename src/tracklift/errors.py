"""Exceptions shared by every stage of the pipeline."""

from __future__ import annotations


class TrackliftError(Exception):
    """Base class of tracklift's own errors."""


class DataError(TrackliftError):
    """Input data that cannot be used: names the file (URL) and the problem.

    Args:
        url: the file or object the problem was found in.
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, url: str, problem: str):
        self.url = str(url)
        self.problem = problem
        super().__init__(f"{self.url}: {problem}")

    def __reduce__(self):  # picklable across Ray workers
        return (type(self), (self.url, self.problem))


class ConfigError(TrackliftError):
    """A configuration value that is missing or inconsistent."""
