"""Judging (API.md 1.1): a program's output checked against expected output, over test cases.

- `verdicts.py`: the status words judging adds (`wrong_answer`, and `skipped` for a case);
- `checkers.py`: the checkers a request names, and the comparisons of the built-in ones;
- `cases.py`: the program compiled once and run once per case, each run checked.

It runs programs only through `executor.sandbox`, and knows nothing of queues or HTTP.
"""
