"""`python -m watchkeeper.agent` is the same as the `watchkeeper` command."""

from watchkeeper.agent.cli import main

main()
