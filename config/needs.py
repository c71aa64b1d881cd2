"""What each CLI command reads (it declares one of these as `settings_used`): a bad value of a
setting it never reads (PORT=99999 for `check`) is not its problem. The bot's tokens are there
for redaction: every output masks them.

Names only, apart from config.settings, so that declaring them costs a command's `--help`
nothing (the settings model imports pydantic).
"""

from __future__ import annotations

ALL = None  # every setting (`serve`)
HOST = frozenset(
    {
        "dify_dir",
        "dify_compose_project",
        "ollama_url",
        "check_timeout",
        "docker_host",
        "hosts_file",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "bot_language",
    }
)
REPAIR = HOST | {"fix_ollama_url", "fix_ollama_base_url", "fix_database", "backup_dir", "state_dir"}
HISTORY = frozenset(
    {
        "state_dir",
        "history_days",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "bot_language",
    }
)
