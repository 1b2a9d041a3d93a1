"""Code that runs *inside* the sandboxed worker, next to the student's definitions.

Nothing here may import the rest of :mod:`autograder`: the worker sees only this folder and the
student-facing ``labtools.py`` (the grader's files and the reference solution are hidden from it).
Everything it sends back is plain data, and the trusted side decides every score.
"""
