"""`python -m lmcache_ctxzip server ...`: LMCache's own command line with the ctxzip serde registered first.

LMCache builds its L2 adapters (and their serdes) inside the server process, so the "ctxzip" serde type
must be registered there before the config is parsed; this runs `lmcache` with every argument unchanged.
"""

import sys

import lmcache_ctxzip


def main() -> None:
    lmcache_ctxzip.register()
    from lmcache.cli.main import main as lmcache_main

    sys.argv[0] = "lmcache"
    sys.exit(lmcache_main())


if __name__ == "__main__":
    main()
