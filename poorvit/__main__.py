"""`python -m poorvit COMMAND ...`: the commands of `poorvit.cli`."""
import sys

from poorvit.cli import main

if __name__ == "__main__":
    sys.exit(main())
