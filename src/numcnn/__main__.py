"""``python -m numcnn``: the same command line as the ``numcnn`` console script."""

import sys

from numcnn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
