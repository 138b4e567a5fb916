"""How atdr commands fail: the one exception type for user mistakes (the CLI prints its message on
one line, no traceback) and the exit codes that tell a supervisor what may be tried again."""

EXIT_USER_ERROR = 2  # an AtdrError: the same command fails the same way until the input is fixed
EXIT_TRANSIENT = 74  # a fault another attempt may not meet (I/O, a dead data-loader worker, CUDA/NCCL)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving its state; the same command resumes
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (after saving, where there was something to save)


class AtdrError(Exception):
    """A problem with the user's input (file, config, argument) that they can fix.

    The message must say what is wrong and where (file, entry, key), in one line.
    """
