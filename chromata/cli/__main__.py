"""``python -m chromata.cli``."""

from chromata.cli import main

main()
