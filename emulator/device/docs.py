"""Generated documentation for the device: the push lifecycle page.

Owns: the text of ``docs/push-lifecycle.md``, rendered from the machine definition so the
docs cannot drift from the code (a golden test compares them; ``pytest --regen-golden``
rewrites the page).
"""

from __future__ import annotations

from emulator.device.lifecycle import STATUS, PushLifecycle, diagram


def lifecycle_page() -> str:
    rows = "\n".join(
        f"| `{state.id}` | {state.name} | {STATUS[state.id]} |" for state in PushLifecycle.states
    )
    return f"""# Push channel lifecycle (generated)

Generated from `emulator/device/lifecycle.py` by `pytest --regen-golden`; do not edit.
Status values follow protocol.md section 0 and [DMC]. Push/Status 7 (a push arrived but power
or connectivity kept the session from starting) is laid over a valid channel's 0 until the
next session.

```mermaid
{diagram().rstrip()}
```

| State | Name | Push/Status |
|---|---|---|
{rows}
"""
