"""The base of every error caused by bad user input (files, names, budgets, options)."""


class InputError(ValueError):
    """Bad input: the message names what is wrong and what would be valid."""
