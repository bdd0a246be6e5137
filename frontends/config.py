"""The settings of ``zoomreel serve`` and ``zoomreel worker``: one table, checked once.

Each setting is defined once, in :data:`SETTINGS`: its environment variable, its flag,
its type, its range and its default. The flags, the ``--help`` texts, the table of
``docs/configuration.md`` (:func:`markdown_table`, written there by
``python -m zoomreel.frontends.config --write docs/configuration.md``) and the check
itself are made from it.
:func:`load` reads and checks every setting of a command before that command starts
anything: a bad value raises :class:`~zoomreel.errors.SettingError`, one line naming the
variable or flag and its range, and nothing has been started, created or deleted.

An empty variable counts as unset; a flag wins over its variable.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoomreel.errors import InputError, SettingError
from zoomreel.jobs.settings import DEFAULT_MAX_QUEUE_LENGTH, DEFAULT_RETENTION_S, JobSettings
from zoomreel.storage import Storage

from ._api_processes import can_share_ports, default_count

__all__ = ["SETTINGS", "Setting", "Config", "load", "add_options", "environment_help",
           "markdown_table", "with_table", "TABLE_MARKERS", "from_env", "http_processes"]


@dataclass(frozen=True)
class Setting:
    """One setting of the service.

    Attributes:
        name: its attribute on :class:`Config`.
        help: what it means, one line.
        kind: ``integer``, ``number``, ``bool`` (``0`` or ``1``), ``choice`` (one of
            ``choices``), ``host``, ``url`` (http/https), ``redis`` (a Redis URL),
            ``origins``, ``keys``, ``secret``, ``path`` or ``text``.
        default: the value when neither the flag nor the variable is given.
        default_text: the default as the docs say it (where ``default`` does not).
        env: its ``ZOOMREEL_*`` variable ("" for none).
        env_aliases: other variables read when ``env`` is unset (the upstream toolkit's
            names, so that its deployments move over unchanged).
        flag: its flag ("" for none).
        flag_on: the commands that have the flag.
        aliases: deprecated spellings of the flag (still accepted).
        commands: the commands that read it.
        minimum: smallest number allowed (inclusive).
        maximum: largest number allowed (inclusive); None = unbounded.
        above: numbers must be greater than this (exclusive minimum).
        zero: what 0 means, where 0 is allowed (below ``minimum`` if need be).
        unit: the unit of a number, named in the rule.
        choices: the values of a ``choice`` (compared case-insensitively).
        rule_text: the rule, for kinds whose rule is not made from the bounds.
        hidden: the value is never echoed (a secret, a URL that may hold a password).
    """

    name: str
    help: str
    kind: str = "text"
    default: Any = None
    default_text: str = ""
    env: str = ""
    env_aliases: tuple[str, ...] = ()
    flag: str = ""
    flag_on: tuple[str, ...] = ("serve",)
    aliases: tuple[str, ...] = ()
    commands: tuple[str, ...] = ("serve", "worker")
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    zero: str = ""
    unit: str = ""
    choices: tuple[str, ...] = ()
    rule_text: str = ""
    hidden: bool = False

    def rule(self) -> str:
        """What a value must be, as the error message and the docs say it."""
        if self.rule_text:
            return self.rule_text
        if self.kind == "bool":
            return "0 or 1"
        if self.kind == "choice":
            return " or ".join(self.choices)
        what = ("a whole number" if self.kind == "integer" else "a number") + (
            f" of {self.unit}" if self.unit else "")
        if self.above is not None:
            text = f"{what} greater than {self.above:g}"
        elif self.maximum is not None:
            text = f"{what} from {self.minimum:g} to {self.maximum:g}"
        else:
            text = f"{what} of at least {self.minimum:g}"
        if not self.zero:
            return text
        if self.minimum == 0:
            return f"{text} (0 = {self.zero})"
        return f"0 ({self.zero}) or at least {self.minimum:g}"

    def default_words(self) -> str:
        """The default, as ``--help`` and the docs say it."""
        if self.default_text:
            return self.default_text
        if isinstance(self.default, bool):
            return str(int(self.default))
        return "unset" if self.default is None else f"{self.default:g}" if isinstance(
            self.default, float) else str(self.default)

    def _number(self, text: str) -> float | None:
        """``text`` as this setting's number, or None when it is not one in range."""
        try:
            value = int(text) if self.kind == "integer" else float(text)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        if value == 0 and self.zero:
            return value
        if (self.above is not None and not value > self.above
                or self.minimum is not None and value < self.minimum
                or self.maximum is not None and value > self.maximum):
            return None
        return value

    def parse(self, text: str, source: str) -> Any:
        """The value of ``text``, given as ``source`` (the variable or the flag).

        Raises:
            SettingError: ``text`` is not in the setting's range.
        """
        def refuse() -> SettingError:
            return SettingError(source, self.rule(), text, show_value=not self.hidden)

        if self.kind in ("integer", "number"):
            value = self._number(text)
            if value is None:
                raise refuse()
            return value
        if self.kind == "bool":
            if text.strip() not in ("0", "1"):
                raise refuse()
            return text.strip() == "1"
        if self.kind == "choice":
            if text.strip().lower() not in self.choices:
                raise refuse()
            return text.strip().lower()
        check = _CHECKS.get(self.kind)
        if check is not None and not check(text):
            raise refuse()
        if self.kind in ("origins", "keys"):
            return tuple(part.strip() for part in text.split(",") if part.strip())
        if self.kind == "path":
            return Path(text)
        return text.strip()


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", text) is not None


def _is_http_url(text: str, *, origin: bool = False) -> bool:
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return not origin or (parts.path in ("", "/") and not parts.query and not parts.fragment
                          and not parts.username)


def _is_redis_url(text: str) -> bool:
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    if parts.scheme == "unix":
        return bool(parts.path)
    return parts.scheme in ("redis", "rediss") and bool(parts.hostname)


def _is_secret(text: str) -> bool:
    from zoomreel.net import check_secret

    try:
        check_secret(text)
    except InputError:
        return False
    return True


def _are_keys(text: str) -> bool:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    return bool(keys) and all(re.fullmatch(r"[!-~]+", key) for key in keys)


def _are_origins(text: str) -> bool:
    origins = [part.strip() for part in text.split(",") if part.strip()]
    return bool(origins) and all(_is_http_url(o, origin=True) for o in origins)


def _is_folder(text: str) -> bool:
    return bool(text.strip()) and not (Path(text).exists() and not Path(text).is_dir())


def _is_bucket(text: str) -> bool:
    return re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", text.strip()) is not None


def _is_prefix(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9!_.*'()/-]{1,512}", text.strip()) is not None and not (
        text.strip().startswith("/"))


_CHECKS = {"bucket": _is_bucket, "prefix": _is_prefix, "host": _is_host,
           "url": _is_http_url, "redis": _is_redis_url, "secret": _is_secret,
           "keys": _are_keys, "origins": _are_origins, "path": _is_folder}

_BOTH = ("serve", "worker")

#: Every setting of ``serve`` and ``worker``, in the order the docs list them.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "address to listen on", "host", "127.0.0.1", flag="--host",
            commands=("serve",), rule_text="an IP address or a host name"),
    Setting("port", "port to listen on", "integer", 8080, flag="--port",
            commands=("serve",), minimum=0, maximum=65535, zero="any free port"),
    Setting("data_dir", "videos, uploads, embedded Redis files, the generated API key",
            "path", Path("zoomreel-data"), default_text="./zoomreel-data",
            env="ZOOMREEL_DATA_DIR", flag="--data-dir", flag_on=_BOTH,
            rule_text="a folder (made if missing), not a file"),
    Setting("render_threads", "render threads", "integer", 2,
            flag="--render-threads", aliases=("--workers",), commands=("serve",),
            minimum=0, zero="no renders; the API, webhook delivery, healing and retention "
            "sweeps still run"),
    Setting("threads", "render threads", "integer", 2, flag="--threads",
            flag_on=("worker",), commands=("worker",), minimum=1),
    Setting("http_processes", "processes answering HTTP (1 = serve itself; Linux only, "
            "elsewhere always 1)", "integer", None, default_text="one per core, at most 4",
            env="ZOOMREEL_HTTP_PROCESSES", flag="--http-processes", commands=("serve",),
            minimum=1),
    Setting("redis_url", "external Redis; unset = serve starts its own (worker needs one)",
            "redis", None, env="ZOOMREEL_REDIS_URL", flag="--redis-url", flag_on=_BOTH,
            rule_text="a redis://, rediss:// or unix:// URL",
            hidden=True),  # its password is not echoed
    Setting("public_url", "base of download_url", "url", None,
            default_text="the address the request came in on", env="ZOOMREEL_PUBLIC_URL",
            flag="--public-url", rule_text="an http:// or https:// URL"),
    Setting("api_keys", "accepted key(s), comma-separated", "keys", (),
            default_text="generated once, kept in the data dir", env="ZOOMREEL_API_KEY",
            commands=("serve",),
            rule_text="one or more keys of visible ASCII characters, comma-separated",
            hidden=True),
    Setting("webhook_secret", "Standard Webhooks signing secret", "secret", None,
            default_text="unset = unsigned", env="ZOOMREEL_WEBHOOK_SECRET",
            rule_text="'whsec_' followed by the base64 of at least 16 random bytes",
            hidden=True),
    Setting("allow_private_urls", "let image and webhook URLs reach loopback and private "
            "addresses", "bool", False, env="ZOOMREEL_ALLOW_PRIVATE_URLS",
            commands=("serve", "worker", "render")),
    Setting("max_queue_length", "queued jobs before a submit gets 429 + Retry-After",
            "integer", DEFAULT_MAX_QUEUE_LENGTH, env="ZOOMREEL_MAX_QUEUE_LENGTH",
            flag="--max-queue-length", minimum=0, zero="unlimited"),
    Setting("max_jobs_per_key", "queued jobs one API key may have before its submits get "
            "429", "integer", JobSettings.max_jobs_per_key, env="ZOOMREEL_MAX_JOBS_PER_KEY",
            minimum=0, zero="unlimited"),
    Setting("max_length", "longest video a request may ask for", "number",
            JobSettings.max_length,
            env="ZOOMREEL_MAX_LENGTH", unit="seconds", above=0),
    Setting("max_slides", "the most slides a reel (POST /v1/video/reel) may have",
            "integer", JobSettings.max_slides, env="ZOOMREEL_MAX_SLIDES", minimum=1),
    Setting("max_audio_mb", "size cap of a reel's track, downloaded or uploaded", "number",
            JobSettings.max_audio_bytes / 2**20, env="ZOOMREEL_MAX_AUDIO_MB", unit="MB",
            above=0),
    Setting("retention_days", "how long finished jobs (record and video) are kept",
            "number", DEFAULT_RETENTION_S / 86400, env="ZOOMREEL_RETENTION_DAYS",
            unit="days", minimum=1, zero="keep forever"),
    Setting("lease_seconds", "a render's lease: a job whose worker died is taken up again "
            "this long after its last renewal", "number", JobSettings.lease_s,
            env="ZOOMREEL_LEASE_SECONDS", unit="seconds", minimum=1),
    # the default is rest.signing.DEFAULT_TTL (a test says so), not imported: that
    # would load Falcon for every command
    Setting("signed_url_ttl", "lifetime of the signed download_url links", "number",
            86400.0, env="ZOOMREEL_SIGNED_URL_TTL", unit="seconds", above=0),
    Setting("idempotency_ttl", "how long a submit's Idempotency-Key is remembered: a "
            "retry with it within this time answers the first call's job",
            "number", JobSettings.idempotency_ttl_s, env="ZOOMREEL_IDEMPOTENCY_TTL",
            unit="seconds", above=0, commands=("serve",)),
    Setting("cors_origins", "browser origins allowed to call the API, comma-separated",
            "origins", (), default_text="unset = none", env="ZOOMREEL_CORS_ORIGINS",
            commands=("serve",),
            rule_text="origins such as https://app.example.com (scheme, host and port "
            "only), comma-separated"),
    Setting("log_format", "one line per event on stderr, with the job's id where there "
            "is one", "choice", "text", env="ZOOMREEL_LOG_FORMAT",
            choices=("text", "json")),
    Setting("convert_route", "what POST /v1/image/convert/video does: documented (202 at "
            "once, then polling) or upstream (the legacy route's semantics: waits for the "
            "video unless the body has webhook_url)", "choice", "documented",
            env="ZOOMREEL_CONVERT_ROUTE", commands=("serve",),
            choices=("documented", "upstream")),
    Setting("max_waiting", "requests each HTTP process lets wait for their video (the "
            "upstream toolkit's synchronous calls); the next gets 503 + Retry-After",
            "integer", JobSettings.max_waiting, env="ZOOMREEL_MAX_WAITING",
            commands=("serve",), minimum=0, maximum=1000,
            zero="synchronous calls refused"),
    Setting("s3_bucket", "S3-compatible bucket for uploads and videos; set = S3 storage "
            "(credentials: S3_ACCESS_KEY/S3_SECRET_KEY, else boto3's: the environment, a "
            "profile, an instance role)", "bucket", None,
            default_text="unset = the data dir", env="ZOOMREEL_S3_BUCKET",
            env_aliases=("S3_BUCKET_NAME",),
            rule_text="a bucket name (3 to 63 of a-z, 0-9, '.', '-')"),
    Setting("s3_endpoint_url", "the S3 API's address (MinIO, R2, B2, Spaces...)", "url",
            None, default_text="unset = AWS", env="ZOOMREEL_S3_ENDPOINT_URL",
            env_aliases=("S3_ENDPOINT_URL",), rule_text="an http:// or https:// URL"),
    Setting("s3_region", "the bucket's region", "text", None,
            default_text="unset = boto3's default", env="ZOOMREEL_S3_REGION",
            env_aliases=("S3_REGION",), rule_text="a region name such as us-east-1"),
    Setting("s3_prefix", "put before every key in the bucket (videos/ and uploads/ go "
            "under it)", "prefix", "", default_text="unset = none",
            env="ZOOMREEL_S3_PREFIX", rule_text="key characters such as zoomreel/, not "
            "starting with /"),
    Setting("s3_public_url", "where the bucket's objects are public (the bucket's URL or "
            "a CDN): download_url is this + '/' + key instead of a presigned link", "url",
            None, default_text="unset = presigned links", env="ZOOMREEL_S3_PUBLIC_URL",
            rule_text="an http:// or https:// URL"),
    Setting("s3_access_key", "the bucket's access key (the upstream toolkit's name)",
            "text", None, default_text="unset = boto3's own", env="S3_ACCESS_KEY",
            rule_text="an access key id", hidden=True),
    Setting("s3_secret_key", "the bucket's secret key (the upstream toolkit's name)",
            "text", None, default_text="unset = boto3's own", env="S3_SECRET_KEY",
            rule_text="a secret access key", hidden=True),
    Setting("s3_retry_seconds", "how long storing a video (or reading an upload) is "
            "retried while the bucket is unreachable or refusing, before the job ends "
            "error", "number", JobSettings.storage_retry_s,
            env="ZOOMREEL_S3_RETRY_SECONDS", unit="seconds", minimum=0),
    Setting("chunk_seconds", "a video longer than this is rendered in chunks of about this "
            "length by every worker at once, then joined without re-encoding (AV1: always "
            "whole)", "number", JobSettings.chunk_s, env="ZOOMREEL_CHUNK_SECONDS",
            unit="seconds", minimum=1, zero="never: every video rendered whole"),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Config:
    """The checked settings of one command (see :data:`SETTINGS`)."""

    host: str
    port: int
    data_dir: Path
    render_threads: int
    threads: int
    http_processes: int | None
    redis_url: str | None
    public_url: str | None
    api_keys: tuple[str, ...]
    webhook_secret: str | None
    allow_private_urls: bool
    max_queue_length: int
    max_jobs_per_key: int
    max_length: float
    retention_days: float
    lease_seconds: float
    signed_url_ttl: float
    cors_origins: tuple[str, ...]
    log_format: str
    convert_route: str
    max_waiting: int
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = ""
    s3_public_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_retry_seconds: float = JobSettings.storage_retry_s
    chunk_seconds: float = JobSettings.chunk_s
    idempotency_ttl: float = JobSettings.idempotency_ttl_s
    max_slides: int = JobSettings.max_slides
    max_audio_mb: float = JobSettings.max_audio_bytes / 2**20
    deprecated: tuple[str, ...] = ()  # deprecated flags used, for a warning

    def job_settings(self) -> JobSettings:
        """The job system's settings."""
        return JobSettings(
            data_dir=self.data_dir, max_queue_length=self.max_queue_length,
            max_jobs_per_key=self.max_jobs_per_key, max_length=self.max_length,
            retention_s=self.retention_days * 86400.0,
            allow_private_urls=self.allow_private_urls,
            webhook_secret=self.webhook_secret, lease_s=self.lease_seconds,
            max_waiting=self.max_waiting, storage_retry_s=self.s3_retry_seconds,
            chunk_s=self.chunk_seconds, idempotency_ttl_s=self.idempotency_ttl,
            max_slides=self.max_slides,
            max_audio_bytes=max(1, int(self.max_audio_mb * 2**20)))

    def storage(self) -> Storage:
        """Where uploads and videos are kept: the bucket when one is set, else the data
        dir (nothing is contacted here: see Storage.check)."""
        from zoomreel.storage import LocalStorage, S3Storage

        if not self.s3_bucket:
            return LocalStorage(self.data_dir)
        return S3Storage(self.s3_bucket, scratch=self.data_dir / "work",
                         endpoint_url=self.s3_endpoint_url, region=self.s3_region,
                         prefix=self.s3_prefix, public_url=self.s3_public_url,
                         access_key=self.s3_access_key, secret_key=self.s3_secret_key)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def load(command: str, args: argparse.Namespace,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read and check every setting of ``command`` (``serve`` or ``worker``).

    Args:
        command: the subcommand.
        args: its parsed flags (as :func:`add_options` declared them).
        environ: the environment (default ``os.environ``).

    Raises:
        SettingError: a setting out of its range; nothing has been started.
        InputError: ``worker`` without a Redis URL.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    deprecated = []
    for setting in SETTINGS:
        values[setting.name] = setting.default
        if command not in setting.commands:
            continue
        given: tuple[str, str] | None = None
        if setting.flag and command in setting.flag_on:
            for flag in (setting.flag, *setting.aliases):
                text = getattr(args, _dest(flag), None)
                if text is not None and text != "":
                    given = (str(text), flag)
                    if flag != setting.flag:
                        deprecated.append(flag)
                    break
        for name in (setting.env, *setting.env_aliases):
            if given is None and name and env.get(name, "").strip():
                given = (env[name], name)
        if given is not None:
            values[setting.name] = setting.parse(*given)
    if command == "worker" and not values["redis_url"]:
        raise InputError("zoomreel worker needs ZOOMREEL_REDIS_URL (or --redis-url)")
    config = Config(**values, deprecated=tuple(deprecated))
    config.job_settings()  # the library's own check, before anything starts
    return config


def from_env(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from its variable alone (for ``zoomreel render``).

    Raises:
        SettingError: the variable is out of its range.
    """
    setting = _BY_NAME[name]
    text = (os.environ if environ is None else environ).get(setting.env, "")
    return setting.parse(text, setting.env) if text.strip() else setting.default


def http_processes(count: int | None) -> int:
    """How many processes answer HTTP: ``count``, else one per core (at most four); 1
    (serve itself) where processes cannot share a port evenly (not Linux)."""
    return (count or default_count()) if can_share_ports() else 1


def _help(setting: Setting) -> str:
    text = f"{setting.help}: {setting.rule()} (default {setting.default_words()}"
    text += f"; ${setting.env})" if setting.env else ")"
    return text.replace("%", "%%")


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add ``command``'s flags to its parser, each with its range in its help.

    Values stay text here: :func:`load` checks them, so that a bad one gets the same one
    line as a bad variable.
    """
    for setting in SETTINGS:
        if not setting.flag or command not in setting.flag_on:
            continue
        metavar = setting.name.upper() if setting.kind not in ("integer", "number") else "N"
        parser.add_argument(setting.flag, default=None, metavar=metavar, help=_help(setting))
        for alias in setting.aliases:
            parser.add_argument(alias, default=None, metavar=metavar,
                                help=f"deprecated spelling of {setting.flag}")
    parser.epilog = environment_help(command)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def environment_help(command: str) -> str:
    """The variables ``command`` reads, with their ranges (the ``--help`` epilog)."""
    lines = ["environment (an empty variable counts as unset; a flag wins over its "
             "variable):"]
    for setting in SETTINGS:
        if setting.env and command in setting.commands:
            lines.append(textwrap.fill(
                f"{setting.env}: {setting.help}: {setting.rule()} (default "
                f"{setting.default_words()})", width=79, initial_indent="  ",
                subsequent_indent="      "))
    return "\n".join(lines)


def markdown_table() -> str:
    """The configuration table of docs/configuration.md."""
    rows = ["| variable | flag | meaning | accepted values | default |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        read_by = tuple(c for c in setting.commands if c in _BOTH)
        flag = f"`{setting.flag}`" if setting.flag else ""
        if setting.aliases:
            flag += f" ({', '.join(f'`{a}`' for a in setting.aliases)}: deprecated)"
        if setting.flag and setting.flag_on != read_by:
            flag += f" ({', '.join(setting.flag_on)})"
        commands = "" if read_by == _BOTH else f" ({', '.join(read_by)})"
        names = ", ".join(f"`{name}`" for name in (setting.env, *setting.env_aliases) if name)
        rows.append(f"| {names} | {flag} | "
                    f"{setting.help}{commands} | {setting.rule()} | "
                    f"{setting.default_words()} |")
    return "\n".join(rows)


#: The comments that enclose the generated table in docs/configuration.md.
TABLE_MARKERS = ("<!-- settings: begin -->", "<!-- settings: end -->")


def with_table(text: str) -> str:
    """``text`` (a Markdown page) with :func:`markdown_table` between its
    :data:`TABLE_MARKERS`, whatever was there before.

    Raises:
        ValueError: the page lacks the markers, or has them out of order.
    """
    begin, end = TABLE_MARKERS
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise ValueError(f"the page needs the lines {begin} and {end}")
    return f"{head}{begin}\n{markdown_table()}\n{end}{tail}"


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zoomreel.frontends.config",
        description="Print the settings table, or write it into a Markdown page.")
    parser.add_argument("--write", metavar="PAGE", type=Path,
                        help="rewrite the table between the markers of PAGE "
                             "(docs/configuration.md)")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table())
        return
    try:
        args.write.write_text(with_table(args.write.read_text()))
    except (OSError, ValueError) as ex:
        parser.error(f"{args.write}: {ex}")


if __name__ == "__main__":
    _main()
