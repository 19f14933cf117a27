"""The simulated Windows device: CSP tree, push lifecycle, schedules, agent (issue 3)."""
