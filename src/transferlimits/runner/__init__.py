"""The runner: Snakemake workflow driver, papermill execution with parameter validation, book build.

Nothing in the library below :mod:`transferlimits.study` imports this package.
"""
