"""The one exception type a user sees: a message they can act on.

The CLI turns an `EdgeGRUError` into one line on stderr and exit code 2.
"""


class EdgeGRUError(Exception):
    """Bad input or a request the toolkit cannot honour; the message says what and how to fix it."""
