"""Loading settings: command-line flag > environment > TOML file > default (SPEC 3).

The key table below is the single description of every setting: its section, type, default and
environment variable. Loading, validation, `config.example.toml` and the README all follow it.
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import SplitResult, urlsplit

from rudder_pipedrive_cli.core.account import ends_in_an_api_path
from rudder_pipedrive_cli.core.costs import PLAN_NAMES
from rudder_pipedrive_cli.core.errors import ConfigError, RpdError, UsageError
from rudder_pipedrive_cli.core.fields import currency_code
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.rules import (
    BOOLEAN_WORDS,
    TrackRules,
    boolean_hint,
    closest,
    nearest,
    parse_rules,
    rule_warnings,
)

ON_INVALID = ("fail", "drop")
IDENTITIES = ("auto", "search", "index")  # how identities are resolved (SPEC 5, core/index.py)
FIELD_SECTIONS = ("persons", "organizations", "leads", "deals")
TRACK = "track"  # [[track]] rules (core/rules.py)
DEFAULT_CONFIG = "rpd.toml"
TOKEN_ENV = "PIPEDRIVE_API_TOKEN"
# A Pipedrive company domain: one DNS label (https://{company_domain}.pipedrive.com).
COMPANY_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Key:
    section: str
    name: str
    kind: type
    default: Any
    env: str
    choices: tuple[str, ...] = ()
    secret: bool = False  # its value is never shown, not even in an error about it


KEYS: tuple[Key, ...] = (
    Key("pipedrive", "api_token", str, "", TOKEN_ENV, secret=True),
    Key("pipedrive", "company_domain", str, "", "RPD_COMPANY_DOMAIN"),
    Key("pipedrive", "base_url", str, "", "RPD_BASE_URL"),
    Key("pipedrive", "plan", str, "growth", "RPD_PLAN", PLAN_NAMES),
    Key("pipedrive", "identities", str, "auto", "RPD_IDENTITIES", IDENTITIES),
    Key("identity", "user_id_field", str, "", "RPD_USER_ID_FIELD"),
    Key("identity", "group_id_field", str, "", "RPD_GROUP_ID_FIELD"),
    Key("identity", "create_persons", bool, False, "RPD_CREATE_PERSONS"),
    Key("identity", "default_currency", str, "", "RPD_DEFAULT_CURRENCY"),
    Key("fields", "on_invalid", str, "fail", "RPD_ON_INVALID", ON_INVALID),
)
KEY_BY_PATH = {f"{k.section}.{k.name}": k for k in KEYS}
SECTION_OF = {k.name: k.section for k in KEYS}  # where a key belongs, for the hint when it is not


REDACTED = "[token redacted]"
LONG_TOKEN = 16  # real tokens are 40 hex digits: this long, they appear in no id or date


def redact_strings(value: Any, token: TokenPattern) -> Any:
    """`value` (decoded JSON) with every match of `token` in its strings replaced by REDACTED."""
    if isinstance(value, str):
        return token.sub(REDACTED, value)
    if isinstance(value, dict):
        return {key: redact_strings(item, token) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_strings(item, token) for item in value]
    return value


class TokenPattern:
    """The API token in any letter case: `search` and `sub` as a compiled pattern's. ASCII text
    (nearly all event data) is searched lower-cased, ten times faster than the case-blind pattern
    (every event is searched while the token is set); other text by the pattern, as Unicode's
    case rules let a few other letters match ASCII ones (`ſ` matches `s`, the Kelvin sign `k`)."""

    __slots__ = ("_lower", "_regex")

    def __init__(self, token: str) -> None:
        self._regex = re.compile(re.escape(token), re.IGNORECASE)
        self._lower = token.lower() if token.isascii() else None

    def search(self, text: str) -> bool:
        if self._lower is not None and text.isascii():
            return self._lower in text.lower()
        return self._regex.search(text) is not None

    def sub(self, replacement: str, text: str) -> str:
        return self._regex.sub(replacement, text) if self.search(text) else text


class Secret:
    """A value that never shows itself: str(), repr() and f-strings print a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def pattern(self) -> TokenPattern | None:
        """The token in any letter case, to find it in event data (SPEC 8); None for a token
        shorter than a real one's `LONG_TOKEN`, which ids and dates may hold by chance."""
        if len(self._value) < LONG_TOKEN:
            return None
        return TokenPattern(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    api_token: Secret = field(default_factory=lambda: Secret(""))
    company_domain: str = ""
    base_url: str = ""
    plan: str = "growth"
    identities: str = "auto"
    user_id_field: str = ""
    group_id_field: str = ""
    create_persons: bool = False
    default_currency: str = ""
    on_invalid: str = "fail"
    person_fields: Mapping[str, str] = field(default_factory=dict)
    org_fields: Mapping[str, str] = field(default_factory=dict)
    lead_fields: Mapping[str, str] = field(default_factory=dict)
    deal_fields: Mapping[str, str] | None = None  # [fields.deals]; None: [fields.leads]
    track_rules: TrackRules = field(default_factory=TrackRules)
    path: Path | None = None  # the config file read, if any
    warnings: tuple[str, ...] = ()
    token_origin: str = ""  # where api_token came from: "$PIPEDRIVE_API_TOKEN" or the file

    def plan_config(self) -> PlanConfig:
        return PlanConfig(
            user_id_field=self.user_id_field,
            group_id_field=self.group_id_field,
            create_persons=self.create_persons,
            default_currency=self.default_currency,
            on_invalid=self.on_invalid,
            person_fields=self.person_fields,
            org_fields=self.org_fields,
            lead_fields=self.lead_fields,
            deal_fields=self.lead_fields if self.deal_fields is None else self.deal_fields,
            track_rules=self.track_rules,
        )

    @property
    def api_url(self) -> str:
        """Where requests go: base_url, else the company domain, else Pipedrive's API host."""
        return resolve_base_url(self.base_url, self.company_domain)


def is_loopback(host: str) -> bool:
    address = _ip(host.strip("[]"))
    return host == "localhost" or (address is not None and address.is_loopback)


def resolve_base_url(base_url: str, company_domain: str) -> str:
    """The API's base URL. Secrets never travel in it (SPEC 9: the token goes in a header), so a
    URL with credentials, a query or a fragment is refused, and the message does not repeat it."""
    if base_url:
        parts = _url_parts(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base_url {_shown(base_url)!r} is not an http(s) URL", hint=URL_HINT)
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"base_url for {parts.hostname} holds credentials, a query or a fragment",
                hint="give only scheme://host[:port][/path]; the token goes in api_token or "
                "PIPEDRIVE_API_TOKEN and is sent in the x-api-token header",
            )
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(
                f"base_url {base_url} uses http:// to a non-loopback host: the token would travel "
                "in clear text",
                hint="use https://, or http:// only for 127.0.0.1, ::1 or localhost",
            )
        # A path rpd adds itself (https://x.pipedrive.com/api/v1, copied from Pipedrive's docs)
        # is said where the URL is read: on a host that did not answer it was 'unreachable'
        # (exit 4), naming no path, and init alone said it.
        if slip := ends_in_an_api_path(base_url.rstrip("/")):
            raise ConfigError(slip.message, hint=slip.hint)
        return base_url.rstrip("/")
    if company_domain:
        if not COMPANY_DOMAIN.fullmatch(company_domain):
            raise ConfigError(
                f"company_domain {_shown(company_domain)!r} is not a Pipedrive company domain",
                hint="give the name before .pipedrive.com (letters, digits and hyphens), "
                'e.g. "acme" for https://acme.pipedrive.com',
            )
        return f"https://{company_domain}.pipedrive.com"
    return "https://api.pipedrive.com"


URL_HINT = "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787"
# What a host may spell: a DNS name in ASCII (a non-ASCII one in its xn-- form), or an IP address.
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def _url_parts(base_url: str) -> SplitResult:
    """`base_url` split, or a ConfigError saying what makes it no URL the client could use: a
    space or control character, a host that is no DNS name or IP address, a port that is no
    number (httpx refuses them only when the first request is made)."""
    if not base_url.isascii() or not base_url.isprintable() or " " in base_url:
        raise ConfigError(
            f"base_url {_shown(base_url)!r} holds a space, a control or a non-ASCII character",
            hint="give the URL without spaces, a non-ASCII host in its xn-- (punycode) form",
        )
    import httpx  # here, not at the top: only a run given a base_url pays for its import

    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number 0-65535
        httpx.URL(base_url)  # the client's own parser: urlsplit lets `[::1];` and `1127.0.0.1` by
    except (ValueError, httpx.InvalidURL):
        raise ConfigError(
            f"base_url {_shown(base_url)!r} is not a valid URL (its host or port)", hint=URL_HINT
        ) from None
    host = parts.hostname or ""
    if host and not HOST_NAME.fullmatch(host) and _ip(host) is None:
        raise ConfigError(f"base_url {_shown(base_url)!r} has no valid host name", hint=URL_HINT)
    return parts


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _shown(value: str) -> str:
    """A value for a message, without what could be a secret: userinfo, query and fragment."""
    try:
        parts = urlsplit(value)
    except ValueError:  # no URL (an unclosed "[" say): cut at what could start a secret
        cut = re.split(r"[@?#]", value, maxsplit=1)
        return cut[0] + ("..." if len(cut) > 1 else "")
    if "@" in parts.netloc:
        value = value.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
    cut = re.split(r"[?#]", value, maxsplit=1)
    return cut[0] + ("..." if len(cut) > 1 else "")


def _coerce(key: Key, value: Any, where: str, *, from_file: bool = False) -> Any:
    """`value` as `key` takes it, given `where` (the file, a $VARIABLE, the command line). Text
    spells a boolean only outside the file (`RPD_CREATE_PERSONS=yes`): TOML has true and false,
    and `create_persons = "no"` taken as text would be one step from being taken as true."""
    if key.kind is bool:
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) and not from_file else None
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
    elif isinstance(value, str):
        if key.choices and value.strip() not in key.choices:
            # From the command line, the flag as it was typed: unknown --plan 'gold'.
            flag = where == "command line"
            name = f"--{key.name.replace('_', '-')}" if flag else key.name
            # A capital (Pipedrive's pages say "Growth") or a typo ("grwoth"): the setting
            # meant, as it is written where it was given.
            meant = closest(value.strip().lower(), key.choices)
            if meant is None:
                spelled = ""
            elif flag:
                spelled = f"did you mean {name} {meant}? "
            elif where == f"${key.env}":
                spelled = f"did you mean {key.env}={meant}? "
            else:
                spelled = f'did you mean {name} = "{meant}"? '
            raise ConfigError(
                f"{'' if flag else where + ': '}unknown {name} {value.strip()!r}",
                hint=f"{spelled}use one of: {', '.join(key.choices)}",
            )
        return value.strip()
    got = _held(value) if key.secret else repr(value)
    if key.kind is bool:
        # From the environment, the line to export: `create_persons = true` is no shell's. From
        # the file, text that spells a boolean (`"yes"`) is shown as the line it meant.
        from_env = where == f"${key.env}"
        hint = f"e.g. {key.env}=true" if from_env else boolean_hint(key.name, value)
        wanted = "true or false"
    else:
        wanted = "a string (in quotes)"
        hint = f"use one of: {', '.join(key.choices)}" if key.choices else ""
        hint = hint or f'e.g. {key.name} = "{key.default or "VALUE"}"'
    raise ConfigError(f"{where}: {key.section}.{key.name} must be {wanted}, got {got}", hint=hint)


# What a value read from TOML is, in TOML's words (not Python's), for errors.
TOML_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


# A config (or a destination's export, `rpd init`) is a few kilobytes: read no more than this,
# so `--config /dev/zero` (or a large file named by mistake) is an error, not all the memory.
SMALL_FILE_CAP = 1 << 20
STDIN_SHOWN = "standard input (-)"  # how a message names `-` (read as `rpd send -` reads events)


def stdin_closed(hint: str) -> UsageError:
    """`-` given with standard input closed (`rpd send - <&-`): `hint` says what to give."""
    return UsageError(f"cannot read {STDIN_SHOWN}: it is closed", hint=hint)


# What a config's bytes start with (a byte order mark) -> its encoding; else UTF-8, a mark left
# out (utf-8-sig: Windows editors save UTF-8 with one, and TOML's reader refuses it). Windows
# PowerShell's `>` and Out-File write UTF-16 (`rpd init -o - > rpd.toml`): read as the same text,
# as events are (io/readers.py). UTF-32's marks first: UTF-16-LE's starts UTF-32-LE's.
ENCODING_MARKS = (
    ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32"),
    ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16"),
)


def read_small(path: Path, what: str, hint: str, stream: BinaryIO | None = None) -> bytes:
    """The bytes of `path`, a small file (or of `stream`, standard input, read in its place and
    named as such): one larger than SMALL_FILE_CAP is not `what`."""
    name = STDIN_SHOWN if stream is not None else str(path)
    if stream is not None:
        data = stream.read(SMALL_FILE_CAP + 1)
    else:
        with path.open("rb") as file:
            data = file.read(SMALL_FILE_CAP + 1)
    if len(data) > SMALL_FILE_CAP:
        raise ConfigError(f"{name}: larger than 1 MiB, so not {what}", hint=hint)
    return data


# What a config that is no regular file (a named pipe, /dev/stdin) held when it was read: read
# again in the same run (tokens_known, as an error is said), it is taken from here, where opening
# the pipe again waited for ever for a writer that was gone.
READ_ONCE: dict[Path, bytes] = {}
CONFIG_HINT = "check --config / $RPD_CONFIG"


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The config's text, and the TOML document it holds."""
    try:
        kept = READ_ONCE.get(path)
        data = kept if kept is not None else read_small(path, "an rpd config", CONFIG_HINT)
        if kept is None and not path.is_file():
            READ_ONCE[path] = data
        encoding = next((name for marks, name in ENCODING_MARKS if data.startswith(marks)), "")
        text = data.decode(encoding or "utf-8-sig")
        return text, tomllib.loads(text)
    except OSError as exc:
        hint = CONFIG_HINT
        # A relative path is read from the current folder: name where it was looked for, as a
        # command run from another folder (cron, a script's cd) reads the same words elsewhere.
        shown = path if path.is_absolute() else f"{path} ({Path.cwd() / path})"
        why = exc.strerror
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            # A link to a config elsewhere (a dotfiles checkout, a volume not mounted): the link
            # is there, what it names is not; `rpd init` would write through it, or fail.
            why = f"it is a symbolic link to {os.readlink(path)}, which does not exist"
            hint += " and where the link points"
        elif isinstance(exc, FileNotFoundError):  # named before `rpd init` wrote it, say
            hint += f", or write it: `rpd init --config {shlex.quote(str(path))}`"
        elif isinstance(exc, IsADirectoryError):  # the project's folder, named for its config
            hint = f"give --config / $RPD_CONFIG the file, e.g. {path / DEFAULT_CONFIG}"
        elif isinstance(exc, PermissionError):  # a file another user (root, a deploy) wrote
            hint = (
                f"check its owner and mode (`ls -l {shlex.quote(str(path))}`): the user "
                "running rpd must be able to read it (`chmod 600` keeps others out)"
            )
        raise ConfigError(f"cannot read config {shown}: {why}", hint=hint) from None
    except tomllib.TOMLDecodeError as exc:
        if LOOKS_LIKE_JSON.match(text):  # a destination's export, or events, named as the config
            raise ConfigError(
                f"{path}: not an rpd config: it holds JSON, and rpd's config is TOML",
                hint="check --config / $RPD_CONFIG; `rpd init --from-rudderstack FILE` converts "
                "a RudderStack destination's JSON",
            ) from None
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint=_syntax_hint(text, exc)) from None
    except UnicodeDecodeError as exc:  # say where the first bad byte is (after a mark, if any)
        read = bytes(exc.object[: exc.start]).decode(exc.encoding)
        byte = len(data) - len(exc.object) + exc.start + 1
        raise ConfigError(
            f"{path}: line {read.count(chr(10)) + 1} is not {(encoding or 'utf-8').upper()} text "
            f"(byte {byte} of the file)",
            hint="save the file as UTF-8",
        ) from None


# `key = some words` (a value TOML cannot read, with no quotes): the most common slip.
UNQUOTED = re.compile(r"""\s*([\w.-]+)\s*=\s*([^\s"'\[{#][^#]*?)\s*(#.*)?""")
TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
# A JSON object (or NDJSON), or an array of them: a TOML file starts no other way with "{".
LOOKS_LIKE_JSON = re.compile(r"\s*\[?\s*\{")


# Keys that take true or false (`create_persons`, a track rule's `done`): their lines' bare
# yes/no/on/off (BOOLEAN_WORDS) are hinted as the boolean meant, not as text to quote.
BOOLEAN_KEYS = frozenset({key.name for key in KEYS if key.kind is bool} | {"done"})


def _syntax_hint(text: str, error: tomllib.TOMLDecodeError) -> str:
    """What to do about a TOML syntax error: a table or key given twice, which one; the line as
    it was probably meant; else fix it."""
    at = TOML_POSITION.search(str(error))
    number = int(at.group(1)) if at else 0
    lines = text.splitlines()
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    twice = DECLARED_TWICE.match(str(error))
    overwritten = str(error).startswith(OVERWRITTEN)
    # tomllib names the table as a Python tuple: ('fields', 'persons')
    name = ".".join(re.findall(r"'((?:[^'\\]|\\.)*)'", twice.group(1))) if twice else ""
    if (twice or overwritten) and (name == TRACK or line.replace(" ", "") in TRACK_HEADERS):
        return "write every rule as [[track]] (two pairs of brackets), the first one too"
    if name:
        return f"[{name}] is written twice: put all its keys under one [{name}]"
    if overwritten:
        key = _key_of(line)
        if key and key in map(_key_of, lines[: number - 1]):
            return f"{key} is set twice in its table: keep one of the two lines"
        return "this line sets again what an earlier line set: keep one of them"
    meant = _line_meant(line) if line else None
    if meant:
        return f"{meant[0]}: {meant[1]}"
    return next((hint for words, hint in TOML_SLIPS if str(error).startswith(words)), SYNTAX)


SYNTAX = "fix the syntax"
OPEN_STRING = "a string ends on its line: close it with the quote it opens with"
ESCAPE = "a backslash within \"...\" starts an escape: write it \\\\, or quote the text with '...'"
# tomllib's words for the first slips in TOML -> what to do (no line of the file repeated: it
# may hold the token).
TOML_SLIPS = (
    ("Illegal character '\\n'", OPEN_STRING),  # in a string: it ran to the end of its line
    ("Unterminated string", OPEN_STRING),
    ('Expected "\'"', OPEN_STRING),
    (
        "Expected '=' after a key",  # YAML's or JSON's `key: value`, or a key with a space
        'a key is set with "=", not ":": key = value (a key holding a space or a colon goes in '
        'quotes: "user id" = ...)',
    ),
    ("Unclosed array", 'an array is written ["A", "B"]: its values separated by commas, then ]'),
    (
        "Expected newline or end of document after a statement",  # "a "quoted" word"
        'one key = value a line; a " within a string is written \\", or the string quoted '
        "with '...'",
    ),
    (
        "Expected ']' at the end of a table declaration",
        "a table's name is closed by ]: [pipedrive], or [[track]] for a rule",
    ),
    ("Unescaped '\\'", ESCAPE),  # a Windows path: "C:\temp"
    ("Invalid hex value", ESCAPE),  # "C:\Users": \U starts a code point
    (
        "Invalid value",
        'a value is text in quotes ("..."), true or false, a number or an array [...]',
    ),
)


# tomllib's words for a table declared twice, and for a key (or a table over a key) set twice.
DECLARED_TWICE = re.compile(r"Cannot declare \(([^)]*)\) twice")
OVERWRITTEN = "Cannot overwrite a value"
TRACK_HEADERS = ("[track]", "[[track]]")  # a rule's header, in either form
KEY_LINE = re.compile(r"""\s*([^\s=\[#][^=#]*?)\s*=""")


HEADER = re.compile(r"\s*\[\[?([^\[\]]+)\]\]?\s*(?:#.*)?")  # [table] or [[table]], its name
NAME_PART = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^."\'\s]+')  # a dotted name's part
STRING_BLOCKS = ('"""', "'''")  # what opens and closes a multi-line string
BASIC_ESCAPE = re.compile(r"\\.")  # a basic string's escape: its \" closes no string


def _delimits(line: str, mark: str) -> bool:
    """Whether `line` opens or closes a multi-line string delimited by `mark` (an odd count)."""
    return (BASIC_ESCAPE.sub("", line) if mark == '"""' else line).count(mark) % 2 == 1


def _dotted(name: str) -> str:
    """A TOML key or table name as the document's keys spell it: `"a" . b` is a.b."""
    return ".".join(part.strip("\"'") for part in NAME_PART.findall(name))


def _named_lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """Each line of a TOML text that declares a table or sets a key: its number, the dotted name
    it declares or sets (`identity`, `identity.user_id_field`), and whether it is a header. The
    lines of a multi-line string are text, not keys."""
    table = ""
    block = ""  # within a multi-line string, its delimiter
    for number, line in enumerate(text.splitlines(), 1):
        if block:
            block = "" if _delimits(line, block) else block
            continue
        header = HEADER.fullmatch(line)
        key = None if header else KEY_LINE.match(line)
        if header:
            table = _dotted(header.group(1))
            yield number, table, True
        elif key:
            yield number, f"{table}.{_dotted(key.group(1))}".lstrip("."), False
        block = next((mark for mark in STRING_BLOCKS if _delimits(line, mark)), "")


def _place(path: Path, text: str, dotted: str) -> str:
    """Where a message about the key or table `dotted` (`identity.user_id_feild`, `identiy`)
    points: `FILE:LINE` at the first line that declares or sets it or a key within it (as rpd's
    event sources, and compilers, name a line; editors jump to it), else the file alone."""
    for number, named, _ in _named_lines(text):
        if named == dotted or named.startswith(dotted + "."):
            return f"{path}:{number}"
    return str(path)


TRACK_RULE_NAME = re.compile(r"track #(\d+)\.")  # a rule's setting as errors name it


def _placed(path: Path, text: str, name: str, rules: int) -> str:
    """`_place` of a setting an error names after the file was read (`identity.default_currency`,
    `fields.persons.role`; `track #2.fields.plan` at its rule's `[[track]]` line, when each of the
    `rules` has one). Walked for the error only."""
    rule = TRACK_RULE_NAME.match(name)
    if rule is None:
        return _place(path, text, name)
    headers = [n for n, named, header in _named_lines(text) if header and named == TRACK]
    return f"{path}:{headers[int(rule.group(1)) - 1]}" if len(headers) == rules else str(path)


def _key_of(line: str) -> str | None:
    """The key a `key = value` line sets, without quotes; None for any other line."""
    key = KEY_LINE.match(line)
    return key.group(1).strip("\"'") if key else None


def _line_meant(line: str) -> tuple[str, str] | None:
    """Why TOML could not read `key = value` with a bare value, and the line as it was meant."""
    unquoted = UNQUOTED.fullmatch(line)
    if not unquoted:
        return None
    key, value = unquoted.group(1), unquoted.group(2)
    secret = _secret_name(key.rsplit(".")[-1])
    if value.startswith("="):  # `key == "x"`: quoting it all would make the value `= "x"`
        rest = value.lstrip("= \t")
        if not rest:
            return None
        meant = _line_meant(f"{key} = {rest}")
        shown = meant[1] if meant else f"{key} = {rest}"
        return ('one "=" between key and value', f'{key} = "..."' if secret else shown)
    if secret:  # the line as meant, without its value (SPEC 8)
        return ("text needs quotes", f'{key} = "..."')
    word = BOOLEAN_WORDS.get(value.lower())
    if word and (value.lower() in ("true", "false") or key.rsplit(".")[-1] in BOOLEAN_KEYS):
        # Quoting `True` would make it text, which only some keys take for true.
        return ("a boolean is true or false, in lower case", f"{key} = {word}")
    quoted = value.replace('"', '\\"')
    return ("text needs quotes", f'{key} = "{quoted}"')


# A secret key's name (api_token), or one it may be misspelled as (api-token, token, apiKey): the
# value of such a line is never shown, not even in the hint that says how to write it.
SECRET_NAMES = frozenset(key.name for key in KEYS if key.secret)
_SECRET_LIKE = re.compile(r"token|secret|passw|api_?key", re.IGNORECASE)


def _secret_name(name: str) -> bool:
    return name in SECRET_NAMES or _SECRET_LIKE.search(name) is not None


def _held(value: Any) -> str:
    """What a value holds by its TOML kind, never the value (a section or secret given the token
    by mistake): "a string", "an integer", "an array of tables ([[...]])"."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return "an array of tables ([[...]])"
    kind = TOML_TYPES.get(type(value), "value")
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _field_table(
    at: Callable[[str], str], section: str, table: Any, prefix: str = ""
) -> dict[str, str]:
    """Trait path -> field key. An unquoted dotted trait (`address.city = "..."`) is a nested
    table in TOML: it reads as the dotted path it spells, like the quoted form. `at` names where
    a key is (`_place`)."""
    # A rule's `fields` ("track #2") is named as rpd check names it.
    named = f"{section}.fields" if section.startswith("track #") else f"fields.{section}"
    if not isinstance(table, dict):
        raise ConfigError(
            f"{at(named)}: [fields.{section}] must be a table of trait = field key, got "
            f"{_held(table)}",
            hint=f"write [fields.{section}] on a line of its own (one pair of brackets), then "
            'trait = "field key" lines: `rpd map-fields --format toml` prints them',
        )
    mapping: dict[str, str] = {}
    for trait, key in table.items():
        if isinstance(key, dict):
            mapping.update(_field_table(at, section, key, f"{prefix}{trait}."))
            continue
        if not isinstance(key, str) or not key.strip():
            dotted = f"{named}.{prefix}{trait}"
            raise ConfigError(
                f"{at(dotted)}: {dotted} must be a Pipedrive field key (a string), got {key!r}",
                hint="run `rpd map-fields --format toml` to list the keys",
            )
        mapping[prefix + trait] = key.strip()
    return mapping


def _fixed(place: str) -> Callable[[str], str]:
    """`_field_table`'s `at` for a place known already (its rule's line), whatever key is asked."""
    return lambda _: place


def _track_rules(path: Path, text: str, tables: Any) -> TrackRules:
    """`[[track]]` rules; a rule's `fields` read as `[fields.*]` tables are (dotted paths). An
    error names the line of its rule's `[[track]]` (rules written inline have none): the text is
    walked for those lines only then, so a run's start does not pay for it."""
    try:
        return _rules(path, tables, [])
    except ConfigError:
        headers = [n for n, named, header in _named_lines(text) if header and named == TRACK]
        if isinstance(tables, list) and len(headers) == len(tables):
            _rules(path, tables, [f"{path}:{number}" for number in headers])  # raises it again
        raise


def _rules(path: Path, tables: Any, places: list[str]) -> TrackRules:
    """`_track_rules`' work, each rule's errors named at its place (`places`; none: the file)."""
    if not isinstance(tables, list):
        return parse_rules(tables, str(path))
    places = places or [str(path)] * len(tables)
    tables = [
        {**table, "fields": _field_table(_fixed(place), f"track #{n}", table["fields"])}
        if isinstance(table, dict) and isinstance(table.get("fields"), dict)
        else table
        for n, (table, place) in enumerate(zip(tables, places, strict=True), 1)
    ]
    return parse_rules(tables, str(path), places=places)


def _file_values(
    path: Path, text: str, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the TOML document (`text` read); return (settings by 'section.name', field
    tables; the `[[track]]` rules under TRACK)."""
    at = partial(_place, path, text)
    values: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    sections = sorted({k.section for k in KEYS} | {TRACK})
    for section, table in data.items():
        if section == TRACK:
            fields[TRACK] = _track_rules(path, text, table)
            continue
        if section not in sections:
            if section in SECTION_OF and not isinstance(table, dict):  # above every section
                raise ConfigError(
                    f"{at(section)}: {section} is outside any section",
                    hint=f"put it under [{SECTION_OF[section]}]",
                )
            if not isinstance(table, dict):  # a key, not a section: a typo, or one misplaced
                near = closest(section, list(SECTION_OF))
                raise ConfigError(
                    f"{at(section)}: unknown key {section}, outside any section",
                    hint=f"did you mean {near!r}? it goes under [{SECTION_OF[near]}]"
                    if near
                    else "keys go under a section: "
                    + ", ".join(f"[{name}]" for name in sorted(set(SECTION_OF.values()))),
                )
            raise ConfigError(
                f"{at(section)}: unknown section [{section}]", hint=nearest(section, sections)
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{at(section)}: {section} must be a table ([{section}]), got {_held(table)}",
                hint=f"write [{section}] on a line of its own (one pair of brackets), its keys "
                "below it",
            )
        names = [k.name for k in KEYS if k.section == section]
        for name, value in table.items():
            key = KEY_BY_PATH.get(f"{section}.{name}")
            if section == "fields" and key is None and isinstance(value, dict):  # [fields.persons]
                if name not in FIELD_SECTIONS:
                    raise ConfigError(
                        f"{at(f'fields.{name}')}: unknown section [fields.{name}]",
                        hint=nearest(name, FIELD_SECTIONS),
                    )
                fields[name] = _field_table(at, name, value)
                continue
            if section == "fields" and name in FIELD_SECTIONS:  # not a table: say what it must be
                _field_table(at, name, value)
            if key is None:
                home = SECTION_OF.get(name)
                hint = f"{name} belongs under [{home}]" if home else nearest(name, names)
                raise ConfigError(
                    f"{at(f'{section}.{name}')}: unknown key {section}.{name}", hint=hint
                )
            try:
                values[f"{section}.{name}"] = _coerce(key, value, str(path), from_file=True)
            except ConfigError:  # said again at its line: the text is walked for errors only
                _coerce(key, value, at(f"{section}.{name}"), from_file=True)
                raise
    return values, fields


def config_path(flag: str | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The config file to read, and whether the user named it (then it must exist)."""
    if flag:
        return Path(flag), True
    if env.get("RPD_CONFIG"):
        return Path(env["RPD_CONFIG"]), True
    return Path(DEFAULT_CONFIG), False


def load_settings(
    config: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    to_be_made: bool = False,
    overwritten: bool = False,
    emulated: bool = False,
) -> Settings:
    """Merge flags (`overrides`, by 'section.name', None = not given), environment and file.
    `to_be_made`: the config is the one `rpd init` writes, so a missing one is no error;
    `overwritten`: the one `rpd init --force` writes over, so an invalid one is left out (and
    said in a warning), not an error; `emulated`: --sandbox, whose own token replaces the one
    configured, so which configured token wins is not said."""
    tokens: list[str] = []  # the token wherever it was given: no error repeats it (SPEC 8)
    try:
        try:
            return _load_settings(
                config,
                overrides=overrides,
                env=env,
                to_be_made=to_be_made,
                tokens=tokens,
                emulated=emulated,
            )
        except ConfigError as error:
            if not overwritten:
                raise
            said = without_tokens(tokens, error).message
            left_out = f"{said}: not read, as --force overwrites it"
        settings = _load_settings(config, overrides=overrides, env=env, read_file=False, tokens=[])
    except ConfigError as error:
        raise without_tokens(tokens, error) from None
    return replace(settings, warnings=(*settings.warnings, left_out))


def without_tokens(tokens: list[str], error: RpdError) -> RpdError:
    """`error` with each of `tokens` (those as long as a real one's, Secret.pattern) in its message
    and hint replaced by REDACTED: a value shown there (an unknown plan, a base_url, a path, an
    option's value) may be the token, put in the wrong variable, key or option. A config error
    stays one; any other is said as an RpdError (its exit is the caller's, from the original)."""
    message, hint = _hidden(tokens, error.message), _hidden(tokens, error.hint)
    if (message, hint) == (error.message, error.hint):
        return error
    return ConfigError(message, hint) if isinstance(error, ConfigError) else RpdError(message, hint)


def tokens_known(config: str | None, env: Mapping[str, str]) -> list[str]:
    """The API token wherever it is known without loading the settings, for an error said before
    or without them (a usage error click raised, an option's value refused): $PIPEDRIVE_API_TOKEN
    and the config file's api_token, when that file reads as TOML (else none from it: its own
    errors are load_settings' to say)."""
    tokens = [env.get(TOKEN_ENV, "")]
    with contextlib.suppress(ConfigError, OSError, ValueError, AttributeError):
        token = _read_toml(config_path(config, env)[0])[1].get("pipedrive", {}).get("api_token")
        tokens.append(token if isinstance(token, str) else "")
    return [token for token in tokens if token]


def _hidden(tokens: list[str], text: str) -> str:
    """`text` with each of `tokens` (those as long as a real one's, Secret.pattern) replaced by
    REDACTED."""
    for token in tokens:
        pattern = Secret(token.strip()).pattern()
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return text


def _load_settings(
    config: str | None,
    *,
    overrides: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    to_be_made: bool = False,
    read_file: bool = True,
    tokens: list[str],
    emulated: bool = False,
) -> Settings:
    """load_settings' work; `tokens` gets the token from each place that gives it, as read."""
    env = os.environ if env is None else env
    tokens += [env.get(TOKEN_ENV, ""), str((overrides or {}).get("pipedrive.api_token") or "")]
    path, named = config_path(config, env)
    file_values: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    warnings: list[str] = []
    used_path: Path | None = None
    text: str | None = None
    # ./rpd.toml a link that leads nowhere is a config that cannot be read, not no config (for
    # `rpd init`, which writes it, it is one still to be made).
    unreadable = (named or path.is_symlink()) and not to_be_made
    if read_file and (path.exists() or unreadable):
        text, data = _read_toml(path)
        section = data.get("pipedrive")
        if isinstance(section, dict) and isinstance(section.get("api_token"), str):
            tokens.append(section["api_token"])
        file_values, fields = _file_values(path, text, data)
        used_path = path
        if file_values.get("pipedrive.api_token") and _readable_by_others(path):
            warnings.append(
                f"{path} holds an API token and is readable by other users: "
                f"run `chmod 600 {path}` or use ${TOKEN_ENV} instead"
            )
    resolved: dict[str, Any] = {}
    origin: dict[str, str] = {}  # where each value came from, for messages

    def came_from(name: str) -> str:
        """Where the value an error names (`pipedrive.base_url`, `fields.persons.role`) came
        from: its flag, its $VARIABLE, or the file's line that sets it (FILE:LINE, as every
        error of the file says). A name of no key's (a table's trait) is the file's."""
        came = origin.get(name.partition(".")[2], str(path))
        if text is None or came != str(path):
            return came
        return _placed(path, text, name, len(fields.get(TRACK, TrackRules()).rules))

    for key in KEYS:
        dotted = f"{key.section}.{key.name}"
        flag_value = (overrides or {}).get(dotted)
        if flag_value is not None:
            origin[key.name] = "command line"
            resolved[key.name] = _coerce(key, flag_value, origin[key.name])
        elif env.get(key.env, "").strip():  # a blank variable is unset, as an empty one is
            origin[key.name] = f"${key.env}"
            resolved[key.name] = _coerce(key, env[key.env], origin[key.name])
        else:
            origin[key.name] = str(path)
            resolved[key.name] = file_values.get(dotted, key.default)
    shadowed = file_values.get("pipedrive.api_token")
    if (
        shadowed
        and not emulated
        and origin["api_token"] != str(path)
        and shadowed != resolved["api_token"]
    ):
        # A stale variable hides a new token in the file: the run would go to the variable's
        # account, perhaps another company's CRM, without a word (both values never shown).
        warnings.append(
            f"{path}'s api_token is not used: {origin['api_token']} holds another token, "
            "and wins (unset it to use the file's)"
        )
    # base_url and company_domain both say where requests go: the one given where precedence
    # is higher wins (a $RPD_COMPANY_DOMAIN beats the file's base_url); given in one place,
    # base_url wins.
    if (
        resolved["base_url"]
        and resolved["company_domain"]
        and _precedence(origin["company_domain"]) < _precedence(origin["base_url"])
    ):
        resolved["base_url"] = ""
    currency = resolved["default_currency"]
    if currency:
        code = currency_code(currency)
        if code is None:
            raise ConfigError(
                f"{came_from('identity.default_currency')}: default_currency {currency!r} is not a "
                "3-letter currency code",
                hint='give an ISO 4217 code, e.g. default_currency = "USD"',
            )
        resolved["default_currency"] = code
    settings = Settings(
        api_token=Secret(resolved.pop("api_token")),
        person_fields=fields.get("persons", {}),
        org_fields=fields.get("organizations", {}),
        lead_fields=fields.get("leads", {}),
        deal_fields=fields.get("deals"),
        track_rules=fields.get(TRACK, TrackRules()),
        path=used_path,
        warnings=tuple(warnings),
        token_origin=origin.get("api_token", ""),
        **resolved,
    )
    fault = header_fault(settings.api_token.reveal())  # the value is never repeated
    if fault:
        raise ConfigError(
            f"{came_from('pipedrive.api_token')}: api_token {fault}",
            hint=f"a Pipedrive API token is 40 hex digits: copy it again into ${TOKEN_ENV}",
        )
    try:
        settings.api_url  # noqa: B018 - validates base_url / company_domain early
    except ConfigError as error:
        where = came_from("pipedrive.base_url" if settings.base_url else "pipedrive.company_domain")
        raise ConfigError(f"{where}: {error.message}", hint=error.hint) from None
    _refuse_token_as_field(settings, tokens, came_from)
    if settings.path is None:  # no file: no rules, no mapping tables
        return settings
    # Warnings that show the config's own names (a trait, an event name): the token, pasted
    # there by mistake, is not shown, as no error shows it.
    found = rule_warnings(settings.track_rules, str(settings.path))
    said = [
        _hidden(tokens, text)
        for text in (*found, *shared_fields(settings), *odd_trait_paths(settings))
    ]
    return replace(settings, warnings=(*settings.warnings, *said)) if said else settings


def mapping_tables(settings: Settings) -> list[tuple[str, Mapping[str, str]]]:
    """Each trait -> field key table of the config, named as messages name it."""
    return [
        ("fields.persons", settings.person_fields),
        ("fields.organizations", settings.org_fields),
        ("fields.leads", settings.lead_fields),
        ("fields.deals", settings.deal_fields or {}),
        *((f"{rule.where}.fields", rule.fields or {}) for rule in settings.track_rules.rules),
    ]


def shared_fields(settings: Settings) -> list[str]:
    """A warning per field key that traits of one table share (`role = "KEY"`, `job = "KEY"`):
    legal, as SPEC 3 says nothing against it, but a field takes one value, and which one an
    event holding both sends is not what a reader guesses. The table's rows go in its order, so
    the trait listed last wins (core/fields.py `mapped_values`: a later row's value replaces
    an earlier one's)."""
    warnings = []
    for table, mapping in mapping_tables(settings):
        traits: dict[str, list[str]] = {}
        for trait, key in mapping.items():
            traits.setdefault(key, []).append(trait)
        for key, names in traits.items():
            if len(names) < 2:
                continue
            *others, last = (repr(name) for name in names)
            said = (
                f"{others[0]} and {last} are both mapped to {key!r}: an event holding both "
                f"sends the value of {last}"
                if len(others) == 1
                else f"{', '.join(others)} and {last} are all mapped to {key!r}: an event "
                "holding several sends the value of the one listed last of those it holds"
            )
            warnings.append(
                f"{settings.path}: {table}: {said}\nhint: a field takes one value: take out the "
                "trait not meant, or list the one meant to win last"
            )
    return warnings


def odd_trait_paths(settings: Settings) -> list[str]:
    """A warning per trait path with an empty part or a part with a space at an end (`"role "`,
    `""`, `"address..city"`): mapped as written, as SPEC 3 reads a path (case sensitive, dots for
    nesting), so it maps a trait an event holds so (`{"role ": ...}`, a key a form or a CSV
    import wrote with its space), and a config that maps one keeps working; but such a path is
    more often a typo that maps nothing, so it is said."""
    return [
        f"{settings.path}: {table}: the trait path {trait!r} has an empty part or a part with a "
        "space at an end: it maps only a trait named exactly so\nhint: if events do not hold it "
        'so, write it as they do, dots between its parts: e.g. address.city = "..."'
        for table, mapping in mapping_tables(settings)
        for trait in mapping
        if any(part != part.strip() or not part for part in trait.split("."))
    ]


def _refuse_token_as_field(
    settings: Settings, tokens: list[str], came_from: Callable[[str], str]
) -> None:
    """A ConfigError for a field key that is the API token (both are 40 hex digits: a newcomer
    pastes one for the other), never showing it: it would be sent as a key, and `rpd check` and
    send's warnings show a key the account lacks (SPEC 8)."""
    patterns = [p for token in tokens if (p := Secret(token.strip()).pattern()) is not None]
    if not patterns:
        return
    fields: list[tuple[str, str]] = [  # its name, the key
        (f"identity.{name}", getattr(settings, name))
        for name in ("user_id_field", "group_id_field")
    ]
    fields += [
        (f"{table}.{trait}", key)
        for table, mapping in mapping_tables(settings)
        for trait, key in mapping.items()
    ]
    for name, key in fields:
        if any(pattern.search(key) for pattern in patterns):
            raise ConfigError(
                f"{came_from(name)}: {name} holds the API token, not a field key",
                hint="both are 40 hex digits: give the field's key (`rpd map-fields` lists them), "
                f"and the token in ${TOKEN_ENV}",
            )


def header_fault(token: str) -> str:
    """What keeps `token` from being sent as it is in the x-api-token header ("" when nothing): a
    header holds printable ASCII only, and loses the white space at its ends (" tok " arrives as
    "tok"). A token read from the config or the environment is stripped first (`_coerce`), so
    only `rpd sandbox --token`, the token a server waits for, can start or end with a space."""
    if not (token.isprintable() and token.isascii()):
        return "holds a control or a non-ASCII character"
    if token != token.strip():
        return "starts or ends with a space"
    return ""


def _precedence(where: str) -> int:
    """0 for a flag, 1 for the environment, 2 for the file (or the default): lower wins."""
    return 0 if where == "command line" else 1 if where.startswith("$") else 2


def _readable_by_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def refused_token_hint(settings: Settings) -> str:
    """What to check when Pipedrive refuses the token: the one place it came from (the
    environment wins over the file, so a stale variable hides a new token in the file)."""
    where = settings.token_origin
    if where.startswith("$"):
        return f"check {where}, the token sent (it wins over [pipedrive] api_token)"
    if where:
        return f"check [pipedrive] api_token in {where}, the token sent (${TOKEN_ENV} is unset)"
    return f"check ${TOKEN_ENV} / [pipedrive] api_token"


# A token put in a variable of another name (PIPEDRIVE_TOKEN, RPD_API_KEY, pipedrive_api_token);
# not one that names where a token is (PIPEDRIVE_TOKEN_FILE).
_TOKEN_LIKE = re.compile(r"(PIPEDRIVE|RPD)_\w*(TOKEN|KEY)(?!\w*_(FILE|PATH)$)\w*", re.IGNORECASE)


def require_token(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    token = settings.api_token.reveal()
    if not token:
        hint = f"set ${TOKEN_ENV} (preferred) or [pipedrive] api_token, or use --sandbox"
        misnamed = sorted(
            name
            for name, value in environ.items()
            if value and name != TOKEN_ENV and _TOKEN_LIKE.fullmatch(name)
        )
        if misnamed:  # named, never shown
            name = misnamed[0]
            hint = f'${name} is set, but rpd reads ${TOKEN_ENV}: export {TOKEN_ENV}="${name}"'
        raise UsageError("no Pipedrive API token configured", hint=hint)
    return token
