"""The real agent TUIs (Claude Code, Codex, Gemini CLI from npm) run offline in private tmux servers.

``install`` puts the pinned npm packages into a cache folder (tests skip with the reason when it can't);
``model_server`` is a scripted model server on 127.0.0.1 whose record of received user messages is the
ground truth for delivery tests; ``apps`` starts each app in its own isolated HOME against that server
and knows its idle and busy screens.
"""
