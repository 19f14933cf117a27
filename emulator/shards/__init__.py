"""A run split into shards, each its own process with its own clock, fleet, fake WNS and
reference server for its devices (issue 19); see :mod:`emulator.shards.coordinator`."""
