"""`python -m exportd.cli`, the same as the `exportd` command."""

from exportd.cli import main

main()
