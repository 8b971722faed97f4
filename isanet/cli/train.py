"""Placeholder: this sub-command is being written (see the open issues)."""


def add_parser(subparsers) -> None:  # replaced by the module's real parser
    pass
