"""Running the bot: HTTP (gunicorn, WSGI) or Socket Mode (slack_sdk's builtin client)."""
