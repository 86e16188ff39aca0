"""One module per subcommand: NAME, HELP, add_arguments(parser), execute(args, ctx) -> int."""
