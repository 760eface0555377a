"""Generated TOML (map-fields --format toml, rpd init) always parses, whatever the account's
field names hold."""

from __future__ import annotations

import tomllib

from rudder_pipedrive_cli.io.tomlwrite import Entry, Table, render_table


def test_control_characters_in_field_names_do_not_break_the_toml() -> None:
    # QA: a field named with an ESC or DEL wrote a config rpd could not load.
    table = Table(
        name="fields.persons",
        comment="Bad\x1bName",
        notes=("line\x7fnote", "two\nlines"),
        entries=(Entry(key="bad_name", value="k" * 40, comment='"Bad\x1bName" (varchar)'),),
    )
    text = "\n".join(render_table(table)) + "\n"
    assert tomllib.loads(text) == {"fields": {"persons": {"bad_name": "k" * 40}}}
    assert "\x1b" not in text and "\x7f" not in text
