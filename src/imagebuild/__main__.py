"""Entry point of the `imagebuild` command."""

import sys

from imagebuild.cli import main

if __name__ == "__main__":
    sys.exit(main())
