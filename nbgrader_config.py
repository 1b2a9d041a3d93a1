"""nbgrader configuration of the autoencoder/VAE lab's course directory (installed by `tools/course.py release`).

`nbgrader autograde` and formgrader's Autograde button grade each submission with the course's sandboxed
grader (`python -m autograder grade`, as `make grade`) in the place of nbgrader's Execute: the notebook never
runs in nbgrader's kernel. Each question's points and feedback go into its auto_<question id> cell; see
autograder/nbgrader_autograde.py. Without this file, nbgrader's Execute runs the notebook and those cells
score 0 with a message. (Dotted names: nbgrader imports them only when it autogrades.)
"""
c = get_config()  # noqa: F821  (defined by traitlets when it loads this file)

# nbgrader's defaults, with the sandboxed grader in the place of nbgrader.preprocessors.Execute
c.Autograde.autograde_preprocessors = [
    "autograder.nbgrader_autograde.SandboxedGrader",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# nbgrader's defaults without ClearOutput: nothing re-executes the notebook, so the student's figures stay
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# The grader's options, with their defaults (`pydoc autograder.nbgrader_autograde.SandboxedGrader` has the help):
# c.SandboxedGrader.grades_dir = "grades"    # its record, shared with `make grade`: results.json, feedback.html
# c.SandboxedGrader.sandbox = "bwrap"        # "none" only where bubblewrap is missing (unsafe)
# c.SandboxedGrader.data_dir = ""            # the datasets: $DATA_DIR, else the repository's data/
# c.SandboxedGrader.grader_args = []         # e.g. ["--device", "cuda"]
# c.SandboxedGrader.timeout = 3600           # seconds per submission
