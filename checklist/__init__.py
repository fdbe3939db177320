"""The pre-run checklist engine, its policies as data, and the launch gate."""
