"""``concert-hub`` command line: ``serve``, ``migrate``, ``token`` (SPEC §1) and ``audit``.

``serve``'s flags are generated from :class:`server.settings.Settings`, so a new setting is a new
flag and environment variable with no second place to edit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from booking import fairness
from booking.keyring import Keyring
from booking.migrate import DatabaseNotReady, upgrade
from server import logs, workers
from server.auth import Role, TokenAuthority
from server.database import make_engine
from server.runner import StartRefused, check_ports, run
from server.secret_store import SecretRequired, resolve_secret
from server.settings import Settings, env_name


def _add_settings_arguments(parser: argparse.ArgumentParser, only: set[str] | None = None) -> None:
    for name, field in Settings.model_fields.items():
        if only is not None and name not in only:
            continue
        flag = "--" + name.replace("_", "-")
        default = "hostname-pid" if name == "node_id" else field.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        text = f"{field.description} [env {env_name(name)}; default: {default!s}]"
        if field.annotation is bool:
            parser.add_argument(flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(flag, default=None, metavar=name.upper(), help=text)


def _settings_from(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(args, name, None)
        if value is None:
            value = os.environ.get(env_name(name))
        if value is not None:
            values[name] = value
    return Settings.model_validate(values)


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="concert-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run one node (--workers: in several processes)")
    _add_settings_arguments(serve)
    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    _add_settings_arguments(migrate, only={"database_url"})
    token = commands.add_parser("token", help="print a signed token for scripts and SDKs")
    token.add_argument("--user", required=True)
    token.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    _add_settings_arguments(token, only={"secret", "database_url"})
    audit = commands.add_parser("audit", help="check a waiting room's pre-queue shuffle")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("event", type=int, help="the event id")
    audit.add_argument("--url", default="http://127.0.0.1:8080", help="a node's HTTP address")
    audit.add_argument("--file", help="verify a saved audit document instead of fetching it")
    audit.add_argument("--head", help="a head saved from an earlier audit: check that the "
                       "log still holds it (nothing before it was rewritten)")  # fmt: skip
    return parser


def _audit(args: argparse.Namespace) -> int:
    """``concert-hub audit verify EVENT``: fetch (or read) the audit and check it; a node or
    file it cannot read is a one-line error (exit 1), not a traceback."""
    try:
        return _verify_audit(args)
    except (OSError, ValueError) as exc:  # unreachable, no such file, not JSON, a bad URL
        where = args.file or args.url
        print(f"concert-hub: audit: cannot read the audit from {where}: {exc}", file=sys.stderr)
        return 1


def _verify_audit(args: argparse.Namespace) -> int:
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            doc = json.load(handle)
    else:
        url = f"{args.url.rstrip('/')}/api/events/{args.event}/queue/audit"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                doc = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            print(f"FAIL: the server answered {error.code}: {body.get('detail', '')}",
                  file=sys.stderr)  # fmt: skip
            for problem in body.get("problems") or []:
                print(f"FAIL: {problem}", file=sys.stderr)
            return 1
    if doc.get("event_id") != args.event:
        print(f"concert-hub: the audit is of event {doc.get('event_id')}, not {args.event}",
              file=sys.stderr)  # fmt: skip
        return 1
    problems = fairness.verify(doc)
    if args.head and not fairness.extends(doc, args.head):
        problems.append(f"the head {args.head[:16]}… saved earlier is not in the log: rewritten")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"OK: event {args.event}: {len(doc['log'])} pre-queue places match the seed "
          f"committed before opening ({doc['commitment'][:16]}…), "
          f"{len(doc.get('admissions') or [])} admissions in order, chain intact "
          f"(head {doc.get('head') or doc['commitment']})")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "audit":
        return _audit(args)
    try:
        settings = _settings_from(args)
    except ValidationError as exc:
        for error in exc.errors():
            where = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
            print(f"concert-hub: {where}: {error['msg']}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        try:
            asyncio.run(_migrate(settings.database_url))
        except DatabaseNotReady as exc:
            print(f"concert-hub: {exc}", file=sys.stderr)
            return 1
        print(f"concert-hub: schema is up to date ({settings.database_url.split('@')[-1]})")
        return 0
    if args.command == "serve" and settings.database_url.startswith("sqlite"):
        try:
            check_ports(settings)  # before the embedded database and its secret are made
        except StartRefused as exc:
            print(f"concert-hub: {exc}", file=sys.stderr)
            return 1
    try:
        # A token signed with a secret made up here would be refused by every node: the token
        # command reads the node's secret and never creates one.
        secret = resolve_secret(
            settings.secret, settings.database_url, create=args.command != "token"
        )
        keyring = Keyring(secret, settings.previous_secret_list)
    except SecretRequired as exc:
        print(f"concert-hub: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        if args.ttl <= 0:
            print("concert-hub: --ttl: a lifetime of 1 second or more", file=sys.stderr)
            return 2
        try:
            print(TokenAuthority(keyring).issue(args.user, args.role, args.ttl))
        except ValueError as exc:
            print(f"concert-hub: --user: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        workers.check(settings)
    except workers.WorkersRefused as exc:
        print(f"concert-hub: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.node_id)
    try:
        if settings.workers > 1:
            return workers.supervise(settings, keyring)
        run(settings, keyring)
    except StartRefused as exc:
        print(f"concert-hub: {exc}", file=sys.stderr)
        return 1
    return 0
