"""``python -m core …``: the command line (:mod:`core.cli`), under jemalloc when it is installed (:mod:`core.allocator`)."""

import sys

from core.allocator import reexec_with_jemalloc
from core.cli import main

if __name__ == "__main__":
    reexec_with_jemalloc()  # before any model or torch is loaded: the process starts over
    sys.exit(main())
