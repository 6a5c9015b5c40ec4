"""The one exception the subcommands raise for a user error: printed as one line, exit status 2."""


class CLIError(Exception):
    """A mistake in what the user asked for (bad name, missing file, a folder that is not a run...).

    ``main`` prints ``numcnn <command>: error: <message>`` on stderr, without a traceback, and exits with 2."""
