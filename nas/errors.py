"""The errors a command reports in one line: bad user input (files, names, budgets, options),
and work that failed for a reason outside its input."""


class InputError(ValueError):
    """Bad input: the message names what is wrong and what would be valid."""


class WorkFailed(RuntimeError):
    """Work that could not finish for a reason outside its input (a worker process killed): the
    command says so in one line and exits 1; what it had written stays."""
