"""The option schema (impasto.schema): the command line's option arguments, the web's list of options and the
reading of a form all come from it, with the same values and the same one-line messages."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from impasto import schema
from impasto.cli import stylize
from impasto.errors import InputError
from impasto.options import Options, make_options

#: Options no command-line flag sets (the API, presets and impasto video set them).
NOT_FLAGS = {"normalize_losses", "style_layer_norm", "temporal_weight"}


def test_every_option_has_a_flag_or_is_known_not_to():
    fields = {f.name for f in dataclasses.fields(Options)}
    assert set(schema.FLAGS) - fields == set()
    assert fields - set(schema.FLAGS) == NOT_FLAGS


def test_the_command_line_takes_each_option_as_the_schema_says():
    parser = stylize.build_parser()
    actions = {a.dest: a for a in parser._actions}
    for name in schema.FLAGS:
        action = actions[name]
        assert tuple(action.option_strings) == schema.flags(name)
        assert (tuple(action.choices) if action.choices else None) == schema.choices(name)
    assert actions["size"].type is int and actions["style_blend"].type is schema.numbers
    assert actions["masks"].type is None and isinstance(actions["masks"], argparse._AppendAction)


def test_a_form_and_the_command_line_give_the_same_options_and_messages():
    argv = ["c.png", "s.png", "--size", "64", "--style-weight", "3", "--content-layers", "relu4_2", "--alpha", "2"]
    from_cli = stylize.options_from_args(stylize.build_parser().parse_args(argv))
    fields = {"size": "64", "style-weight": "3", "--content_layers": "relu4_2", "content_weight": "2", "tv_weight": ""}
    assert schema.options_from_form(fields) == from_cli == make_options(size=64, style_weight=3.0, content_weight=2.0,
                                                                        content_layers=("relu4_2",))  # fmt: skip
    with pytest.raises(InputError, match="^argument -s/--size: invalid int value: 'big'$"):
        schema.options_from_form({"size": "big"})
    with pytest.raises(InputError, match=r"^unknown field 'colour' \(options are named like the command line's "
                       r"flags: preset, size\)$"):  # fmt: skip
        schema.options_from_form({"colour": "red"}, accepted=("preset", "size"))
    with pytest.raises(InputError, match="^unknown field 'steps'"):  # not among the accepted ones
        schema.options_from_form({"steps": "3"}, accepted=("size",))


def test_the_web_list_of_options_is_in_the_schema_order_with_kinds():
    fields = {f["name"]: f for f in schema.option_fields(["size", "style_blend", "smooth", "init", "content_weight"])}
    assert [fields[n]["kind"] for n in ("size", "style_blend", "smooth", "init")] == ["int", "list", "choice", "text"]
    assert fields["content_weight"]["flag"] == "--content-weight" and fields["smooth"]["cli_group"].startswith("photo")
    assert fields["smooth"]["choices"] == ["exact", "guided", "none"] and fields["size"]["default"] == 512
