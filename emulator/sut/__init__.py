"""The server under test as a process dmemu starts (``--server-cmd``): its life cycle
(:mod:`~emulator.sut.process`) and its clock bound to dmemu's (:mod:`~emulator.sut.faketime`).
"""
