"""An optional positional argument for Invoke tasks: ``invoke restore [NAME]``.

Invoke 2 treats a positional argument as required: its parser eats a word as the
positional while the argument's value is None, and fails the task when it is still
None at the end. This argument is None while words are being read (so a name given
is taken) and reads as its default when the parser checks for missing ones.
"""

from __future__ import annotations

import sys

from invoke.parser import Argument

from ops.cli import OpsTask


class _OptionalPositional(Argument):
    @property
    def value(self):
        if self._value is None and _parser_is_completing():
            return self.default
        return self._value

    @value.setter
    def value(self, arg):
        self.set_value(arg, cast=True)


def _parser_is_completing(depth: int = 6) -> bool:
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code.co_name == "complete_context":
            return True
        frame = frame.f_back
    return False


class OptionalPositionalTask(OpsTask):
    """A task whose positional arguments may be left out (they get their default)."""

    def get_arguments(self, ignore_unknown_help=None):
        arguments = super().get_arguments(ignore_unknown_help)
        for index, arg in enumerate(arguments):
            if arg.positional:
                optional = _OptionalPositional(
                    names=arg.names, kind=arg.kind, default=arg.default, help=arg.help,
                    positional=True, optional=arg.optional, incrementable=arg.incrementable,
                    attr_name=arg.attr_name)
                arguments[index] = optional
        return arguments
