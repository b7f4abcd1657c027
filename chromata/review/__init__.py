"""The human review queue: images whose colorization a curator should look at."""
