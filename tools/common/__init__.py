"""Plumbing every room shares, and nothing domain-specific: no room's models are imported here.

Holds the per-user SQLite file and its migrations (:func:`db.connect`), the state directory
(:func:`state.state_dir`), the one bad-input error (:class:`errors.PreflightError`) and markdown tables
(:func:`render.table`, :func:`render.fmt_scenarios`). Implements no playbook section by itself.
"""
