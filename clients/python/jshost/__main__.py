"""``python -m jshost ARGS``: the jshost command that came with this package.

It runs ``_daemons/jshost`` beside this file (a wheel carries the command
there; an installed prefix links it to its ``bin/jshost``), which finds the
manager and the worker beside itself. ``pip install`` also puts a ``jshost``
script on the environment's PATH that does the same (:func:`main`).
"""

import os
import sys


def main():
    """Replaces this process with the packaged jshost command."""
    cli = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_daemons", "jshost")
    try:
        os.execv(cli, ["jshost"] + sys.argv[1:])
    except OSError as e:
        sys.stderr.write("jshost: cannot run %s: %s (this jshost package was not "
                         "installed with its command: pip install it, or make "
                         "install)\n" % (cli, e.strerror))
        sys.exit(3)


if __name__ == "__main__":
    main()
