"""One module per subcommand, each with `register(subparsers)`; cli.main finds them all."""
