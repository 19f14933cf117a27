"""The MDM side: what a server does toward WNS and devices (the reference server grows here)."""
