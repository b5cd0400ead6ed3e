"""`python -m mlops_operator.ctl` is `kubectl mlops` (the `kubectl-mlops` console script)."""

from .cli import main

main()
