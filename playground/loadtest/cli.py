"""The command line: arguments, their refusals, and what reaches the terminal."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import urllib.parse
from pathlib import Path

from core.errors import ConfigError, PlaygroundError

from .students import CHROMIUM


def loopback_url(url: str) -> str:
    """`url` if it names this machine over http(s); otherwise a ConfigError saying what is allowed."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ConfigError(f"--url {url!r} is not on this machine; the load test talks only over loopback: "
                          "use http://127.0.0.1:PORT/, http://localhost:PORT/ or http://[::1]:PORT/")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m playground.loadtest",
                                description="A classroom of sessions on one server: latency, queue, redraws, memory.")
    p.add_argument("--sessions", type=int, default=30, help="students at once, tabs and API clients together")
    p.add_argument("--minutes", type=float, default=10.0, help="how long the students keep working")
    p.add_argument("--tabs", type=int, default=None, help="how many of the sessions are Chromium tabs (default a third)")
    p.add_argument("--url", default=None, help="a running server on this machine (default: start python app.py)")
    p.add_argument("--pid", type=int, default=None, help="with --url: the server's pid, to read its memory and children")
    p.add_argument("--soak", action="store_true", help="cycles of open, play, reset, switch and close, to watch memory")
    p.add_argument("--json", default=None, metavar="OUT", help="write the whole report to this file")
    p.add_argument("--think", type=float, default=3.0, help="mean think time between clicks, in seconds")
    p.add_argument("--patience", type=float, default=120.0, help="seconds a student waits in the queue before moving on")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds without an answer that count as an error")
    p.add_argument("--settle", type=float, default=60.0, help="seconds after every session closed before the last reading")
    p.add_argument("--seed", type=int, default=0, help="seeds the think times")
    p.add_argument("--browser-weight", type=int, default=None, metavar="W",
                   help="run the tabs' Chromium in a cgroup of CPU weight W, so that the browsers together weigh on "
                        "the machine's cores as W/100 of one ordinary process (as started, in a session of their own, "
                        "they weigh 100 where the kernel groups sessions); Linux, needs root")
    return p


def check_args(args) -> None:
    """Refuse what cannot run, one line each, and fill in the default number of tabs."""
    if not 1 <= args.sessions <= 200:
        raise ConfigError(f"--sessions {args.sessions}: allowed 1 to 200")
    if not 0 < args.minutes <= 120:
        raise ConfigError(f"--minutes {args.minutes:g}: allowed above 0, at most 120")
    if args.tabs is None:
        args.tabs = args.sessions // 3
    if not 0 <= args.tabs <= args.sessions:
        raise ConfigError(f"--tabs {args.tabs}: allowed 0 to --sessions ({args.sessions})")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout:g}: allowed above 0 seconds")
    for name in ("think", "patience", "settle"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name} {getattr(args, name):g}: allowed 0 or more seconds")
    if args.browser_weight is not None and not args.tabs:
        raise ConfigError("--browser-weight goes with --tabs: with no tabs there is no browser to weigh")
    if args.url is not None:
        args.url = loopback_url(args.url)
    elif args.pid is not None:
        raise ConfigError("--pid goes with --url; without --url the load test starts the server and knows its pid")
    if args.pid is not None and not os.path.isdir(f"/proc/{args.pid}"):
        raise ConfigError(f"--pid {args.pid}: no such process on this machine")
    if args.tabs:
        if not os.path.exists(CHROMIUM):
            raise ConfigError(f"--tabs {args.tabs} needs Chromium at {CHROMIUM}; install it, or pass --tabs 0")
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            raise ConfigError(f"--tabs {args.tabs} needs playwright (pip install playwright), or pass --tabs 0") from None


def keep_local() -> None:
    """No telemetry, no token, no proxy: students and server speak only over loopback.
    (Set before gradio_client or huggingface_hub is imported; the server inherits it.)"""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    for key in ("NO_PROXY", "no_proxy"):
        os.environ[key] = ",".join(filter(None, [os.environ.get(key, ""), "127.0.0.1,localhost,::1"]))


def main(argv: list[str] | None = None) -> int:
    from .classroom import LoadTest
    from .table import render

    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        keep_local()
        report = LoadTest(args).run()
    except PlaygroundError as e:
        print(f"loadtest: {e}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
