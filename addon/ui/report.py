"""How an operator fails: a FacePolicyError becomes one error report in Blender's status bar and Info editor, and the
operator is cancelled, so it leaves no undo step."""

from __future__ import annotations

import functools

from ..core.errors import FacePolicyError


def reports_errors(method):
    """Decorate an operator's ``execute(self, context)`` or ``invoke(self, context, event)``: a FacePolicyError is
    reported as ``{"ERROR"}`` with its message and the operator returns ``{"CANCELLED"}``. Other exceptions are bugs
    and keep their traceback."""

    def run(self, *args):
        try:
            return method(self, *args)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

    # Blender checks the argument count of execute (self, context) and invoke (self, context, event) when it
    # registers the class, so the wrapper takes exactly the method's arguments.
    if method.__code__.co_argcount == 3:
        def wrapper(self, context, event):
            return run(self, context, event)
    else:
        def wrapper(self, context):
            return run(self, context)
    return functools.wraps(method)(wrapper)
