"""One exception type for bad input, so the CLI can print it as a single line and exit non-zero."""


class InputError(Exception):
    """Bad user input: the message names the file, ID or line and what is wrong with it."""


class Preempted(Exception):
    """Training stopped on a preemption signal (SIGUSR1 / SIGTERM) after saving a checkpoint; a
    rerun of the same command resumes from it. The CLI exits with :data:`PREEMPTED_EXIT`."""


PREEMPTED_EXIT = 75  # EX_TEMPFAIL: a temporary failure, try again
