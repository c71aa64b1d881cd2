"""Host-side work: Docker engine, compose project, `.env`, Ollama probes.

Nothing in this package imports Slack. Every public function returns plain result objects
(see `handlers.results`) that the CLI (`cli/`) and the Slack app (`bot/`) render.
"""
