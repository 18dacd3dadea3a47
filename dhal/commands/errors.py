"""The one error type a command raises for a user mistake; `dhal` prints it without a traceback."""


class CommandError(Exception):
    """A wrong argument or an unavailable choice, explained in words the user can act on."""
