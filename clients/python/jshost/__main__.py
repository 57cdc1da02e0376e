"""``python -m jshost ARGS``: the jshost command that came with this package.

It runs ``jshost`` beside this file (a wheel carries the command there, with
the manager and the worker; an installed prefix links it to its
``bin/jshost``, the build tree to the build's), which finds the daemons as it
always does. ``pip install`` also puts a ``jshost``
script on the environment's PATH that does the same (:func:`main`).
"""

import os
import sys


def main():
    """Replaces this process with the packaged jshost command."""
    cli = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jshost")
    try:
        os.execv(cli, ["jshost"] + sys.argv[1:])
    except OSError as e:
        sys.stderr.write("jshost: cannot run %s: %s (this jshost package was not "
                         "installed with its command: pip install it, or make "
                         "install)\n" % (cli, e.strerror))
        sys.exit(3)


if __name__ == "__main__":
    main()
