"""The terminal side: `dify-ollama <command>`, rendering handler results as text or JSON."""
