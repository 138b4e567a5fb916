"""One module per `atdr` subcommand: a docstring (the help), `add_arguments(parser)`, `run(args)`."""
