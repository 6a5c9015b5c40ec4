"""``python -m numcnn.bench``: see numcnn.bench."""

from . import main

raise SystemExit(main())
