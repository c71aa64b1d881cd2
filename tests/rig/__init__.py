"""Shared test rig: a fake Ollama on the host and a look-alike Dify compose stack."""
