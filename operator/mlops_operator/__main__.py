"""`python -m mlops_operator` is `mlops-operator`."""

from .cli import main

main()
