"""The analysis core: decode -> frames -> features -> rhythm -> structure -> profile.

Nothing in this package imports from ``featherbeat.web`` or ``featherbeat.jobs``.
"""
