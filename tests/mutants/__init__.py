"""Mutation testing: does every protocol rule have more than one check that sees it?

``python -m tests.mutants`` (or ``nox -s mutants``) breaks one rule at a time in a copy of
the repository and runs the unit tests, the property tests and short simulator sweeps
against each broken copy. See :mod:`tests.mutants._runner` and ``docs/simulator.md``.
"""
