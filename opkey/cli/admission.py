"""Run the Kubernetes admission gate.

The deploy-time gate: a validating admission webhook (``opkey admission serve``) that serves
admission.k8s.io/v1 AdmissionReviews on POST /validate, with /healthz, /readyz and /metrics,
until SIGTERM. Every container image of a Pod or pod template is verified against the policy its
rule chooses; any error denies (fail closed). Logs are JSON lines on standard error. The server
needs the admission extra: pip install 'opkey[admission]'. Rules, responses and the cache:
https://github.com/opkey-dev/opkey/blob/main/spec/admission.md
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from opkey.cli.key_options import add_key_arguments
from opkey.cli.registry_options import add_registry_access_arguments
from opkey.cli.timestamp_options import add_timestamp_verify_arguments
from opkey.cli.tlog_options import add_tlog_verify_arguments

if TYPE_CHECKING:
    import argparse

__all__ = ["configure", "run"]

_SPEC = "https://github.com/opkey-dev/opkey/blob/main/spec/admission.md"


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        import argparse

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        # NaN compares false with everything and infinity is no bound: both are refused.
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive number")
        return value

    return parse


def _non_negative(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more seconds")
    return value


def _count(text: str) -> int:
    import argparse

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more")
    return int(text)


class _Number(NamedTuple):
    """One numeric ``serve`` option: its flag, the parser refusing bad values, and its help."""

    flag: str
    parse: Callable[[str], int | float]
    default: int | float
    metavar: str
    help: str


# The numeric options of ``serve``, declared once; :func:`_add_numbers` adds them where they
# belong in the help (next to the options they relate to), by flag.
_NUMBERS = {
    row.flag: row
    for row in (
        _Number(
            "--deadline",
            _positive(float),
            8.0,
            "SECONDS",
            "time one admission may take, well inside the webhook's timeoutSeconds; images "
            "not verified by then are refused (default: %(default)g)",
        ),
        _Number(
            "--workers",
            _positive(int),
            16,
            "N",
            "threads verifying images (default: %(default)s)",
        ),
        _Number(
            "--cache-size",
            _count,
            100_000,
            "N",
            "verdicts kept, least recently used dropped first; 0 turns the cache off "
            "(default: %(default)s)",
        ),
        _Number(
            "--cache-ttl",
            _non_negative,
            600.0,
            "SECONDS",
            "how long a passed verdict is reused (default: %(default)g)",
        ),
        _Number(
            "--negative-cache-ttl",
            _non_negative,
            30.0,
            "SECONDS",
            "how long a rejection is reused; failures to reach the registry or provider are "
            "never cached (default: %(default)g)",
        ),
        _Number(
            "--max-request-bytes",
            _positive(int),
            8 * 1024 * 1024,
            "N",
            "largest request body accepted, 413 beyond (default: %(default)s)",
        ),
        _Number(
            "--refresh-interval",
            _positive(float),
            60.0,
            "SECONDS",
            "how often provider keys are fetched in the background (default: %(default)g)",
        ),
        _Number(
            "--reload-interval",
            _non_negative,
            10.0,
            "SECONDS",
            "how often the certificate, rule and policy files are checked and reloaded when "
            "they changed; 0: the rules and policies only at start (default: %(default)g)",
        ),
    )
}


def _add_numbers(group: Any, *flags: str) -> None:
    """Add the :data:`_NUMBERS` rows named by ``flags`` to ``group``, in that order."""
    for flag in flags:
        row = _NUMBERS[flag]
        group.add_argument(
            row.flag, type=row.parse, default=row.default, metavar=row.metavar, help=row.help
        )


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``admission`` action ``serve`` and its options."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve AdmissionReviews over HTTPS",
        description="Serve admission.k8s.io/v1 AdmissionReviews on POST /validate, with "
        "/healthz, /readyz and /metrics, until SIGTERM. Every image of a Pod or pod template "
        "is verified against the policy its rule chooses; any error denies (fail closed). "
        f"Rules and responses: {_SPEC}",
    )
    which = serve.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--config", metavar="FILE", help="rule file choosing a policy by namespace and image"
    )
    which.add_argument(
        "--policy", metavar="FILE", help="one policy file applied to every image everywhere"
    )
    serve.add_argument(
        "--listen", metavar="HOST:PORT", required=True, help="address to serve on (0.0.0.0:8443)"
    )
    serve.add_argument("--tls-cert", metavar="PEM", required=True, help="serving certificate")
    serve.add_argument("--tls-key", metavar="PEM", required=True, help="its private key")
    serve.add_argument(
        "--mode",
        choices=("enforce", "warn"),
        help="warn: admit everything, returning warnings for what enforce would refuse (audit "
        "mode for rolling out a policy); default: each rule's mode (enforce with --policy)",
    )
    serve.add_argument(
        "--allow-tags",
        action="store_true",
        help="with --policy: resolve tags to digests through the registry instead of refusing "
        "images not pinned by digest",
    )
    _add_numbers(serve, "--deadline", "--workers")
    cache = serve.add_argument_group("verdict cache")
    _add_numbers(cache, "--cache-size", "--cache-ttl", "--negative-cache-ttl")
    _add_numbers(serve, "--max-request-bytes")
    add_key_arguments(serve, offline_note=" (and the policy files' key files)")
    _add_numbers(serve, "--refresh-interval")
    add_timestamp_verify_arguments(serve)
    add_tlog_verify_arguments(serve)
    _add_numbers(serve, "--reload-interval")
    registry = serve.add_argument_group("registries")
    add_registry_access_arguments(registry)
    registry.add_argument(
        "--registry-private-addresses",
        action="store_true",
        help="allow registries on private addresses (an in-cluster registry); refused by "
        "default so that an image name cannot point the gate at internal services",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="JSON logs on standard error from this level (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT."""
    import asyncio
    from pathlib import Path

    from opkey.cli.key_options import trust_options
    from opkey.errors import ConfigError

    try:
        from opkey.admission.config import Mode
        from opkey.admission.server import configure_logging
        from opkey.admission.service import ServeOptions, build_server
    except ImportError as exc:  # the admission extra is not installed
        raise ConfigError(
            f"the admission server needs {exc.name}: pip install 'opkey[admission]'"
        ) from None
    options = ServeOptions(
        listen=args.listen,
        tls_cert=Path(args.tls_cert),
        tls_key=Path(args.tls_key),
        config=Path(args.config) if args.config else None,
        policy=Path(args.policy) if args.policy else None,
        mode=Mode(args.mode) if args.mode else None,
        allow_tags=args.allow_tags,
        deadline=args.deadline,
        workers=args.workers,
        cache_entries=args.cache_size,
        cache_ttl=args.cache_ttl,
        negative_cache_ttl=args.negative_cache_ttl,
        max_request_bytes=args.max_request_bytes,
        keys=trust_options(args),
        refresh_interval=args.refresh_interval,
        reload_interval=args.reload_interval,
        insecure_registries=tuple(args.insecure_registry),
        registry_ca_file=args.registry_ca_file,
        registry_private=args.registry_private_addresses,
    )
    configure_logging(args.log_level)
    server = build_server(options)
    asyncio.run(server.serve())
    return 0
