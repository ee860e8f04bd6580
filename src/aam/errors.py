"""One exception type for bad input, so the CLI can print it as a single line and exit non-zero."""


class InputError(Exception):
    """Bad user input: the message names the file, ID or line and what is wrong with it."""
