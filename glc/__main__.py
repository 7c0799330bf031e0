"""``python -m glc``: see :mod:`glc.cli`."""

from glc.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
