"""Errors the analysis core raises at its boundary. Each carries a message a person can act on."""

from __future__ import annotations


class AnalysisError(Exception):
    """Base of every error featherbeat raises on purpose."""


class DecodeError(AnalysisError, ValueError):
    """The input cannot be read as audio (empty, not audio, truncated beyond use, unsupported)."""


class InputTooLongError(DecodeError):
    """The input decodes but is longer than the caller's duration limit."""
