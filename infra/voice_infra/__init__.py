"""Pulumi program of the AI voice connector: one ComponentResource per concern.

`program.deploy()` wires them; `__main__.py` validates the stack config first, then calls it.
"""
