"""Supernet training: data, samplers, the trainer, evaluation and the ``nas train`` command.

Importing this package is cheap (no torch); the modules that need torch import it themselves.
"""
