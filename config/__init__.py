"""Settings of the bot itself (never Dify's `.env`) and the Slack app manifest."""
