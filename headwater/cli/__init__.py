"""The ``headwater`` command line. Nothing imports this package but the console script."""
