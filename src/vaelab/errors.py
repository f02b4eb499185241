"""The one exception type that the command line turns into a one-line message."""


class VaelabError(Exception):
    """An expected mistake (bad input, missing file, incompatible run): shown without traceback."""
