"""What `spark-submit` launches: `spark-submit [cluster options] retain/submit.py COMMAND [OPTIONS]` runs
one `retain` command on the cluster's session, with the Spark engine unless RETAIN_ENGINE says otherwise.

`python -m retain.submit --path` prints this file's path, for the spark-submit command line.
"""

from __future__ import annotations

import os
import sys

from retain.cli import main

if __name__ == "__main__":
    if sys.argv[1:] == ["--path"]:
        print(os.path.abspath(__file__))
        raise SystemExit(0)
    os.environ.setdefault("RETAIN_ENGINE", "spark")
    main()
