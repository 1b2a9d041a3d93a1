"""The hidden graders: pytest modules run by :mod:`autograder.runner` in the trusted process.

Each test is one check, marked with its question id (``@pytest.mark.question("vae_loss")``);
its docstring's first line is the check's title in the feedback, and the docstring's line
``ja: …`` its Japanese title. A check fails by raising a :class:`~autograder.failures.GradingFailure`
whose message, written with :func:`autograder.i18n.t` in Japanese and English, is what the student reads.
"""
