"""Real MCP clients drive our server: the MCP Inspector CLI (npm, pinned) over stdio and HTTP, and the
agent CLIs headless (``codex exec``, ``claude -p``) against a scripted model that calls our tools and
records what comes back.

``inspector`` installs and runs the Inspector; ``tool_server`` is the scripted tool-calling model (an
extension of ``realapps.model_server``); ``agents`` runs an agent with our server registered as the
README says; ``checks`` holds what every test asserts (sizes as forwarded, an error's next step).
"""
