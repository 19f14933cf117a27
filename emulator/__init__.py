"""dmemu: a device-side emulator of Windows MDM push (DMClient CSP, WNS, OMA-DM).

The package is named ``emulator`` as the design card fixes it; the product and CLI are ``dmemu``.
"""

__version__ = "0.1.0"
