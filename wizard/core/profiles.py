"""Saved profiles: one declared schema, JSON files written atomically and privately."""

from __future__ import annotations

import builtins
import getpass
import json
import os
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import platformdirs

from wizard.core import redis_rules as rr
from wizard.core import secrets
from wizard.core.connection import PgSettings
from wizard.core.files import FolderNotPrivate, private_folder, write_atomic
from wizard.core.hints import hint
from wizard.core.redis_conn import RedisSettings, RedisSettingsError

APP = "enerlink-migrate"
SCHEMA_VERSION = 1
KIND = "enerlink-migrate profile"
EXPORT_KIND = "enerlink-migrate profiles"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
BACKUP_FORMATS = ("custom", "directory")
DEFAULT_REDIS_URL = RedisSettings.url
REDIS_TIMEOUT_S = RedisSettings.timeout_s
NAME_RE = re.compile(r"[^\W_][\w .@+-]{0,63}")
PG_ENV = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
          "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT"}


class ProfileError(ValueError):
    """A profile or profile file is not acceptable; the message says what to fix."""


class ProfileNotFound(ProfileError):
    pass


Check = Callable[[Any], str | None]


def _meta(label: str, description: str, *, flag: str | None = None,
          check: Check | None = None, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """A field's declaration: the written label a form shows (never one made from the key),
    the description (CLI help, tooltip), its flag, check and choices."""
    return {"label": label, "description": description, "flag": flag, "check": check,
            "choices": choices}


def _range(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low:g} and {high:g}"


def _check_name(name: str) -> str | None:
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (it names a file and a keyring entry)"
    if not NAME_RE.fullmatch(name) or name != name.strip():
        return ("must be 1-64 letters, digits, spaces or . _ - @ +, starting with a letter "
                "or digit")
    return None


def parse_redis_rules(text: str) -> tuple[rr.Rule, ...]:
    """Rules written one per line or separated by ';' (the profile's and the page's form)."""
    lines = [line.strip() for part in text.split(";") for line in part.splitlines()]
    return rr.validate(rr.parse(line) for line in lines if line)


def _check_redis_rules(text: str) -> str | None:
    try:
        parse_redis_rules(text)
    except rr.RuleError as exc:
        return str(exc)
    return None


def _check_redis_url(url: str) -> str | None:
    try:
        if urlsplit(url).password is not None:
            return ("must not contain a password: store it in the keyring ("
                    + hint("enerlink-migrate profiles edit NAME --set-password redis",
                           "the profile's Redis password field") + ")")
        RedisSettings(url=url)  # the cache step's own rules, so a saved URL always works there
    except (ValueError, RedisSettingsError) as exc:
        return f"is not usable: {exc}"
    return None


def _check_http_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (the smoke password goes in the keyring)"
    return None


@dataclass(frozen=True)
class Profile:
    """Where a migration runs and how. No password: those live in the keyring only."""

    name: str = field(metadata=_meta(
        "Profile name", "profile name (letters, digits, space, . _ - @ +)",
        check=_check_name))
    pg_host: str | None = field(default=None, metadata=_meta(
        "Host", "PostgreSQL host or socket folder (unset: PGHOST, else localhost)",
        flag="--host"))
    pg_port: int | None = field(default=None, metadata=_meta(
        "Port", "PostgreSQL port (unset: PGPORT, else 5432)", flag="--port",
        check=_range(1, 65535)))
    pg_dbname: str | None = field(default=None, metadata=_meta(
        "Database", "database (unset: PGDATABASE, else enerlink_db)", flag="--dbname"))
    pg_user: str | None = field(default=None, metadata=_meta(
        "User (role)",
        "role to connect as, the tables' owner (unset: PGUSER, else your login name)",
        flag="--user"))
    pg_sslmode: str | None = field(default=None, metadata=_meta(
        "SSL mode", "libpq sslmode (unset: PGSSLMODE, else prefer)", flag="--sslmode",
        choices=SSL_MODES))
    pg_sslrootcert: str | None = field(default=None, metadata=_meta(
        "CA certificate file", "CA certificate file for verify-ca/verify-full",
        flag="--sslrootcert"))
    redis_url: str | None = field(default=None, metadata=_meta(
        "Redis URL", "Redis URL, redis:// or rediss:// (TLS), no password",
        check=_check_redis_url))
    redis_username: str | None = field(default=None, metadata=_meta(
        "Redis user name", "Redis ACL user name (unset: the default user)"))
    redis_db: int | None = field(default=None, metadata=_meta(
        "Redis database index", "Redis database index (unset: the URL's /N, else 0)",
        check=_range(0, 1_000_000)))
    redis_ca_file: str | None = field(default=None, metadata=_meta(
        "Redis CA certificate file", "CA certificate file for rediss://"))
    redis_rules: str | None = field(default=None, metadata=_meta(
        "Redis migration rules",
        "Redis migration rules, separated by ';' (unset: EnerLink's: "
        + "; ".join(rr.to_text(r) for r in rr.DEFAULT_RULES) + ")",
        check=_check_redis_rules))
    backup_folder: str | None = field(default=None, metadata=_meta(
        "Backup folder", "folder for backups (unset: the run's folder)"))
    backup_format: str = field(default="custom", metadata=_meta(
        "Backup format",
        "pg_dump format: custom (one file) or directory (parallel with --backup-jobs)",
        choices=BACKUP_FORMATS))
    backup_jobs: int = field(default=1, metadata=_meta(
        "Parallel jobs", "parallel pg_dump/pg_restore jobs (directory format)",
        check=_range(1, 64)))
    pg_dump_path: str | None = field(default=None, metadata=_meta(
        "pg_dump program",
        "pg_dump to use instead of searching PATH and the usual install folders"))
    lock_timeout_s: float = field(default=2.0, metadata=_meta(
        "Lock timeout (s)", "seconds to wait for each lock before rolling back and retrying",
        flag="--lock-timeout", check=_range(0.001, 3600)))
    retries: int = field(default=3, metadata=_meta(
        "Retries after a lock timeout", "attempts after a lock timeout",
        check=_range(0, 100)))
    app_stop_command: str | None = field(default=None, metadata=_meta(
        "Stop command", "command that stops the application (e.g. pm2 stop enerlink-backend)"))
    app_start_command: str | None = field(default=None, metadata=_meta(
        "Start command", "command that starts the application again"))
    smoke_base_url: str | None = field(default=None, metadata=_meta(
        "Application URL", "application base URL for the login smoke check",
        check=_check_http_url))
    smoke_user: str | None = field(default=None, metadata=_meta(
        "Smoke-check account",
        "test account for the smoke check (its password goes in the keyring)"))
    operator: str | None = field(default=None, metadata=_meta(
        "Operator", "operator name printed on the checklist"))
    reviewer: str | None = field(default=None, metadata=_meta(
        "Reviewer", "reviewer of the change, printed on the report next to the operator"))
    change_ref: str | None = field(default=None, metadata=_meta(
        "Change reference",
        "change or ticket reference (e.g. CHG-1234), carried into the journal and the report",
        flag="--change"))
    ask_every_time: bool = field(default=False, metadata=_meta(
        "Ask for passwords every time",
        "never read or store this profile's passwords in the keyring; ask every time"))

    def __post_init__(self) -> None:
        for spec in SCHEMA:
            value = getattr(self, spec.key)
            if value == "" and spec.optional:  # an empty form field means "not set"
                object.__setattr__(self, spec.key, None)
                value = None
            problem = spec.problem(value)
            if problem:
                raise ProfileError(f"{self._who()}: {spec.key} {problem}")
        if any(v is not None for v in self.redis_fields().values()):
            try:  # fields that only make sense together (a CA file needs rediss://)
                self.redis_settings()
            except RedisSettingsError as exc:
                raise ProfileError(f"{self._who()}: Redis settings: {exc}") from None

    def _who(self) -> str:
        return f"profile {self.name!r}" if isinstance(self.name, str) else "profile"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pg_fields(self) -> dict[str, Any]:
        """The PostgreSQL fields this profile sets, under PgSettings' names."""
        values = {k: getattr(self, f"pg_{k}") for k in PG_ENV}
        return {k: v for k, v in values.items() if v is not None}

    def pg_settings(self, password: str | None = None) -> PgSettings:
        """Connection settings: this profile, then PG* variables, then libpq's defaults."""
        return resolve_pg(self.pg_fields(), pg_env(), password=password)

    def redis_fields(self) -> dict[str, Any]:
        """The Redis endpoint as plain values (no password)."""
        return {"url": self.redis_url, "username": self.redis_username, "db": self.redis_db,
                "ca_file": self.redis_ca_file}

    def redis_rule_list(self) -> tuple[rr.Rule, ...]:
        """The profile's Redis migration rules, checked; EnerLink's when it sets none."""
        return parse_redis_rules(self.redis_rules) if self.redis_rules else rr.DEFAULT_RULES

    def redis_settings(self, password: str | None = None,
                       timeout_s: float = REDIS_TIMEOUT_S) -> RedisSettings:
        """Redis connection settings (the default local URL when the profile sets none)."""
        return RedisSettings.from_url(self.redis_url or DEFAULT_REDIS_URL,
                                      username=self.redis_username, password=password,
                                      db=self.redis_db, ca_file=self.redis_ca_file,
                                      timeout_s=timeout_s)


@dataclass(frozen=True)
class FieldSpec:
    """One declared profile field: what the file, the CLI and the form are built from."""

    key: str
    type: builtins.type[Any]
    optional: bool
    default: Any
    label: str  # written for people ("Stop command"), never derived from the key
    description: str
    flag: str
    choices: tuple[str, ...]
    check: Check | None

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.optional else "is required"
        if not _is_type(value, self.type):
            return f"must be {_TYPE_WORDS[self.type]}, not {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {value!r}"
        return self.check(value) if self.check else None


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _is_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or kind is bool:  # bool is an int in Python, not in a profile
        return isinstance(value, bool) and kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _schema() -> tuple[FieldSpec, ...]:
    hints = get_type_hints(Profile)
    specs = []
    for f in fields(Profile):
        hint = hints[f.name]
        optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
        base = next(a for a in get_args(hint) if a is not type(None)) if optional else hint
        meta = f.metadata
        specs.append(FieldSpec(
            key=f.name, type=base, optional=optional,
            default=None if f.name == "name" else f.default, label=meta["label"],
            description=meta["description"],
            flag=meta["flag"] or "--" + f.name.replace("_", "-"), choices=meta["choices"],
            check=meta["check"]))
    return tuple(specs)


SCHEMA = _schema()
KEYS = tuple(spec.key for spec in SCHEMA)


def from_dict(data: object, source: str = "profile") -> Profile:
    """A validated Profile from plain values; unknown keys (a password above all) refused."""
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: a profile must be a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        why = ""
        if any("pass" in k.lower() or "secret" in k.lower() for k in unknown):
            why = (" — passwords are never kept in a profile; store them in the keyring "
                   + hint("with enerlink-migrate profiles edit NAME --set-password postgres",
                          "(the profile's password field)"))
        raise ProfileError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}{why}")
    if "name" not in data:
        raise ProfileError(f"{source}: the profile has no name")
    return Profile(**data)


# --- where profiles live -------------------------------------------------------------------

def config_root() -> Path:
    """The configuration folder: ENERLINK_MIGRATE_CONFIG, else the platform's config dir."""
    override = os.environ.get("ENERLINK_MIGRATE_CONFIG")
    return Path(override) if override else platformdirs.user_config_path(APP)


def profiles_dir() -> Path:
    return config_root() / "profiles"


def _path(name: str) -> Path:
    problem = _check_name(name) if isinstance(name, str) else "must be text"
    if problem:
        raise ProfileError(f"profile name {name!r} {problem}")
    return profiles_dir() / f"{name}.json"


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- versions ------------------------------------------------------------------------------

def _from_v0(doc: dict[str, Any]) -> dict[str, Any]:
    # Version 0: a bare object of fields with no envelope, as written by hand.
    return {"schema_version": 1, "kind": KIND, "profile": doc}


_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _from_v0}


def _current(doc: Any, source: str) -> dict[str, Any]:
    """The document brought to SCHEMA_VERSION; a newer one is refused."""
    if not isinstance(doc, dict):
        raise ProfileError(f"{source}: not a profile file (expected a JSON object)")
    version = doc.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ProfileError(f"{source}: schema_version {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise ProfileError(
            f"{source} was written by a newer enerlink-migrate (schema version {version}; "
            f"this one reads up to {SCHEMA_VERSION}): upgrade enerlink-migrate, or recreate "
            "the profile with this version")
    current: dict[str, Any] = doc
    while version < SCHEMA_VERSION:
        current = _MIGRATIONS[version](current)
        version = current["schema_version"]
    return current


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path} is not valid JSON ({exc}): fix or remove the file") from None


# --- the API -------------------------------------------------------------------------------

def list_profiles() -> list[str]:
    """Names of the saved profiles, sorted."""
    folder = profiles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))


def load(name: str) -> Profile:
    path = _path(name)
    if not path.exists():
        raise ProfileNotFound(f"no profile named {name!r} in {path.parent} (enerlink-migrate "
                              f"profiles list shows them; profiles add {name} creates it)")
    doc = _current(_read(path), str(path))
    profile = from_dict(doc.get("profile"), str(path))
    if profile.name != name:
        raise ProfileError(f"{path} holds profile {profile.name!r}: rename the file to "
                           f"{profile.name}.json or fix its name")
    return profile


def save(profile: Profile) -> Path:
    """Write the profile (replacing one of the same name) atomically, mode 0600."""
    path = _path(profile.name)
    same = [n for n in list_profiles() if n.casefold() == profile.name.casefold()]
    if same and profile.name not in same:
        # Case-insensitive file systems (macOS, Windows) would make these one file.
        raise ProfileError(f"profile {profile.name!r} differs from {same[0]!r} only in case: "
                           "choose another name")
    try:
        private_folder(profiles_dir())  # only its owner may list the profiles
    except FolderNotPrivate as exc:
        raise ProfileError(str(exc)) from None
    write_atomic(path, _json_text({"schema_version": SCHEMA_VERSION, "kind": KIND,
                                   "profile": profile.to_dict()}))
    return path


def remove(name: str) -> list[str]:
    """Delete the profile and its keyring secrets; returns warnings for the DBA."""
    path = _path(name)
    if not path.exists():
        raise ProfileNotFound(f"no profile named {name!r} in {path.parent}")
    path.unlink()
    warnings: list[str] = []
    for what in secrets.WHATS:
        try:
            secrets.delete(name, what)
        except secrets.SecretsUnavailable as exc:
            warnings.append(f"stored passwords of {name!r} could not be removed: {exc}")
            break
    return warnings


def export(names: Iterable[str], path: Path) -> list[str]:
    """Write the named profiles (all when none are named) to one file, without secrets."""
    chosen = list(names) or list_profiles()
    profiles = [load(n).to_dict() for n in chosen]
    write_atomic(Path(path), _json_text({"schema_version": SCHEMA_VERSION,
                                         "kind": EXPORT_KIND, "profiles": profiles}))
    return chosen


def import_(path: Path, overwrite: bool = False) -> list[str]:
    """Save every profile of an export (or one profile file); all checked before any written."""
    source = str(path)
    doc = _current(_read(Path(path)), source)
    entries = doc["profiles"] if "profiles" in doc else [doc.get("profile")]
    if not isinstance(entries, list):
        raise ProfileError(f"{source}: 'profiles' must be a list")
    incoming = [from_dict(e, f"{source} entry {i + 1}") for i, e in enumerate(entries)]
    names = [p.name for p in incoming]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ProfileError(f"{source} holds {', '.join(map(repr, twice))} more than once")
    existing = set(list_profiles())
    clash = [n for n in names if n in existing]
    if clash and not overwrite:
        raise ProfileError(f"profile(s) {', '.join(map(repr, clash))} already exist: nothing "
                           "imported; use --overwrite to replace them")
    for profile in incoming:
        save(profile)
    return names


# --- connection settings -------------------------------------------------------------------

def pg_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The PG* variables libpq would read, under PgSettings' names (PGPASSWORD excluded)."""
    env = os.environ if environ is None else environ
    return {k: env[v] for k, v in PG_ENV.items() if env.get(v)}


def resolve_pg(*layers: Mapping[str, Any], password: str | None = None) -> PgSettings:
    """PgSettings from layers, the first that sets a field winning; libpq defaults last."""
    def pick(key: str) -> Any:
        return next((layer[key] for layer in layers if layer.get(key) not in (None, "")), None)

    port = pick("port")
    try:
        port_number = int(port) if port is not None else 5432
    except ValueError:
        raise ProfileError(f"port {port!r} is not a number (check --dsn, the profile and "
                           "PGPORT)") from None
    return PgSettings(host=str(pick("host") or "localhost"), port=port_number,
                      dbname=str(pick("dbname") or "enerlink_db"),
                      user=str(pick("user") or getpass.getuser()),
                      sslmode=str(pick("sslmode") or "prefer"),
                      sslrootcert=pick("sslrootcert"), password=password)
