"""``isanet download NAME --dir DIR``: fetch published weights with a progress bar and a hash check."""

from __future__ import annotations

import argparse

from isanet.cli.errors import usage_checks
from isanet.cli.options import add_output


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("download", help="download a zoo model's published weights")
    parser.add_argument("name", help="zoo name (1.x or legacy 0.x)")
    add_output(parser, "--dir", kind="dir", default="data/checkpoints",
               help="folder to write into (default: %(default)s)")
    parser.add_argument("--url", help="download from this address instead (a mirror); the zoo hash still applies")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from isanet.io.download import check_url, download
    from isanet.models.zoo import get_entry

    with usage_checks():
        get_entry(args.name)  # an unknown name or address is a usage error, a failed download is not
        if args.url:
            check_url(args.url)
    print(download(args.name, args.dir, url=args.url))
    return 0
