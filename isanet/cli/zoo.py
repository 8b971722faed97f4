"""``isanet zoo``: print the 16 published configurations (or one entry in full with ``--show NAME``)."""

from __future__ import annotations

import argparse
import json

from isanet.cli.errors import usage_checks


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="list the published ISANet models")
    parser.add_argument("--show", metavar="NAME", help="print every fact of one entry as JSON")
    parser.add_argument("--dataset", type=str.lower, choices=("cityscapes", "ade20k", "voc"),
                        help="only entries of this data set")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from isanet.models import zoo

    if args.show:
        with usage_checks():
            entry = zoo.get_entry(args.show)
        print(json.dumps(entry.to_dict(), indent=1))
        return 0
    entries = [zoo.get_entry(name) for name in zoo.list_models()]
    if args.dataset:
        entries = [entry for entry in entries if zoo.short_dataset_name(entry) == args.dataset]
    print(zoo.format_table(entries))
    return 0
