"""dmemu inside a pytest suite: the fixtures of :mod:`emulator.testing.plugin`."""
