"""Slack side of dify-ollama-bot: parsing, authorization, Block Kit, threads, buttons."""
