"""The one exception type for errors a user can cause.

The CLI turns a :class:`UserError` into a one-line message on stderr and exit code 2;
library callers catch it like any other exception. Its message is written for the user:
say what is wrong with which input and what to do about it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a missing file, an unknown model: anything the user can fix."""

    exit_code = 2
