"""The one exception type for user mistakes: the CLI prints its message on one line, no traceback."""


class AtdrError(Exception):
    """A problem with the user's input (file, config, argument) that they can fix.

    The message must say what is wrong and where (file, entry, key), in one line.
    """
