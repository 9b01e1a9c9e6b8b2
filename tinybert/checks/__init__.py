"""End-to-end checks of a machine, each composing the steps and classify into one summary and one JSON record."""
