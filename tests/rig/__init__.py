"""Shared test rig: a fake Ollama on the host and a look-alike Dify compose stack, plus the
helpers several test modules share (incident, log_containers, cli_process, read_only)."""
