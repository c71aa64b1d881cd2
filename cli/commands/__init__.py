"""One module per subcommand, each with `register(subparsers)`; see cli.main.COMMANDS."""
