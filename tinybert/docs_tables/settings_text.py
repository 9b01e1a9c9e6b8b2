"""The settings table as text: test/common.sh's assignments, each script's help, docs/settings.md's table.
Standard library only: every test/*.sh runs this when it starts."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace

from tinybert.settings import RUN_VALUES, TIMESTAMP_FORMAT, Setting, default, for_script
from tinybert.settings import setting as find_setting

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
# Characters that mean nothing special inside "${NAME:-...}"; anything else is single-quoted.
_PLAIN = re.compile(r"[A-Za-z0-9 _./,:@%+=-]*")


def _parts(default: str) -> list[tuple[bool, str]]:
    """(is_reference, text) pieces of a default: literal text and {NAME}/{run value} references."""
    parts, start = [], 0
    for match in _PLACEHOLDER.finditer(default):
        if match.start() > start:
            parts.append((False, default[start:match.start()]))
        parts.append((True, match.group(1)))
        start = match.end()
    if start < len(default):
        parts.append((False, default[start:]))
    return parts


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def shell_assignment(name: str, default: str) -> str:
    """`NAME="${NAME:-default}"`: the default unless the environment sets NAME (non-empty). References
    stay ${OTHER}; literal text is kept exactly (single-quoted where it holds shell syntax)."""
    parts = _parts(default)
    if all(ref or _PLAIN.fullmatch(text) for ref, text in parts):
        word = "".join("${" + text + "}" if ref else text for ref, text in parts)
        return f'{name}="${{{name}:-{word}}}"'
    # Outside double quotes: inside "${NAME:-...}" bash would take a ' as the start of a quote.
    word = "".join('"${' + text + '}"' if ref else _single_quoted(text) for ref, text in parts)
    return f"{name}=${{{name}:-{word}}}"


def run_values(now: float | None = None) -> dict[str, str]:
    """The values a run computes once (RUN_VALUES), which defaults refer to as {name}."""
    values = {"stamp": time.strftime(TIMESTAMP_FORMAT, time.localtime(now))}
    assert values.keys() == RUN_VALUES.keys(), "every run value needs a definition here"
    return values


def shell_assignments(script: str | None = None, now: float | None = None) -> str:
    """Lines for `eval`: the run values, then each setting `script` reads, set to its default when the
    environment leaves it unset or empty (settings without a default end up empty, never unset)."""
    lines = [f"{name}={_single_quoted(value)}" for name, value in run_values(now).items()]
    lines += [shell_assignment(setting.name, _script_default(setting, script)) for setting in for_script(script)]
    return "\n".join(lines) + "\n"


def _script_default(setting: Setting, script: str | None) -> str:
    """The default `script` gets: its own where the table gives one (script_defaults), else the setting's."""
    if script is None:
        return setting.default
    return dict(setting.script_defaults).get(os.path.basename(script), setting.default)


def default_of(name: str, backend: str | None = None, script: str | None = None) -> str:
    """A setting's default (`script`'s own where it has one); for one that depends on the backend (LOOP),
    its default on `backend`."""
    if find_setting(name).per_backend:
        from tinybert.errors import UsageError
        from tinybert.registry import loop_default

        if backend is None:
            raise UsageError(f"expected --backend for the {name} default, which depends on the backend")
        return str(loop_default(backend))
    return default(name, script)


def shown_default(setting: Setting, code: str = "", script: str | None = None) -> str:
    """A default for people: references as $NAME and <run value>, per-backend and per-script defaults spelled
    out (with `script`, only the default that script gets)."""
    if script is not None and setting.script_defaults:
        setting = replace(setting, default=_script_default(setting, script), script_defaults=())
    if setting.per_backend:
        from tinybert.registry import loop_defaults

        return ", ".join(f"{code}{value}{code} on {backend}" for backend, value in loop_defaults())
    if not setting.default:
        return "(empty)"
    text = _PLACEHOLDER.sub(lambda m: f"${m.group(1)}" if m.group(1).isupper() else f"<{m.group(1)}>",
                            setting.default)
    shown = f"{code}{text}{code}"
    by_value: dict[str, list[str]] = {}
    for name, value in setting.script_defaults:
        by_value.setdefault(value, []).append(name)
    return "; ".join([shown] + [f"{code}{value}{code} in {', '.join(f'{code}{n}{code}' for n in names)}" for value, names in by_value.items()])


def _run_values_used(settings) -> list[str]:
    used = {name for s in settings for ref, name in _parts(s.default) if ref and name in RUN_VALUES}
    return [name for name in RUN_VALUES if name in used]


def help_text(script: str | None = None) -> str:
    """What a script prints under its usage line: the settings it reads, with their defaults."""
    settings = for_script(script)
    width = max(len(s.name) for s in settings) + 2
    lines = ["Settings (environment variables) and defaults; why each: python -m tinybert settings --markdown"]
    lines += [f"  {s.name:<{width}}{shown_default(s, script=script)}" for s in settings]
    lines += [f"  <{name}>: {RUN_VALUES[name]}" for name in _run_values_used(settings)]
    return "\n".join(lines) + "\n"


def _cell(text: str, code: bool = False) -> str:
    """Table-cell text: a | would end the cell; outside code spans a < could start an HTML tag."""
    text = text.replace("|", "\\|")
    return text if code else text.replace("<", "\\<")


def markdown(script: str | None = None) -> str:
    """The settings table for docs/settings.md (a test keeps the file equal to this)."""
    settings = for_script(script)
    lines = ["| 设置 | 默认值 | 读取它的脚本 | 理由 |", "| ---- | ---- | ---- | ---- |"]
    for s in settings:
        readers = ", ".join(f"`{name}`" for name in s.scripts) if s.scripts else "全部"
        lines.append(f"| `{s.name}` | {_cell(shown_default(s, '`'), code=True)} | {readers} | {_cell(s.why)} |")
    notes = [f"`<{name}>`: {RUN_VALUES[name]}." for name in _run_values_used(settings)]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
