"""ctxzip's evaluation harness: real data sets, fixed splits, metrics, runners and reports.

Run from the repository root: `python -m eval --help`.
"""
