"""berth.core.cli.template: Go text/template as Docker's --format uses it, and tables.

Expected strings are what Docker (Go's text/template, docker/cli's
formatter and tabwriter) prints for the same template and data.
"""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from berth.core.cli.template import columns, format_rows, render
from berth.core.errors import InvalidArgument

DATA = {
    "Id": "4f2a9c",
    "Name": "/web",
    "Config": {
        "Labels": {"b": "2", "a": "1"},
        "Cmd": ["sh", "-c", "sleep 1"],
        "Env": None,
        "Image": "busybox",
    },
    "State": {"Running": True, "Pid": 42, "ExitCode": 0, "Health": None, "Status": "running"},
    "Ports": [],
    "Sizes": [3, 1, 2],
    "Ratio": 1.5,
    "Mounts": [{"Source": "/a", "RW": True}, {"Source": "/b", "RW": False}],
}


@pytest.mark.parametrize("template, expected", [
    # fields, dot, literal text
    ("{{.Name}}", "/web"),
    ("id={{.Id}} img={{.Config.Image}}", "id=4f2a9c img=busybox"),
    ("{{.State.Pid}}", "42"),
    ("{{.Config.Env}}", "<nil>"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Nope.Deeper}}", "<no value>"),
    ("{{.State.Running}} {{.Ratio}}", "true 1.5"),
    # Go's printing of maps (sorted keys), lists, nested values
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{.Config.Cmd}}", "[sh -c sleep 1]"),
    ("{{.Ports}}", "[]"),
    ("{{.Mounts}}", "[map[RW:true Source:/a] map[RW:false Source:/b]]"),
    # json: compact like Go's json.Marshal, no HTML escaping
    ("{{json .Config.Labels}}", '{"a":"1","b":"2"}'),
    ("{{json .Config.Cmd}}", '["sh","-c","sleep 1"]'),
    ("{{json .Config.Env}}", "null"),
    ("{{json .Nope}}", "null"),
    ("{{json .State.Status}}", '"running"'),
    ("{{.Config.Labels | json}}", '{"a":"1","b":"2"}'),
    # len, index
    ("{{len .Sizes}} {{len .Config.Labels}} {{len .Name}}", "3 2 4"),
    ('{{index .Config.Labels "b"}}', "2"),
    ('[{{index .Config.Labels "missing"}}]', "[]"),
    ("{{index .Sizes 0}}", "3"),
    ("{{index .Mounts 1 | json}}", '{"RW":false,"Source":"/b"}'),
    # range, variables
    ("{{range .Sizes}}<{{.}}>{{end}}", "<3><1><2>"),
    ("{{range .Mounts}}{{.Source}}:{{.RW}} {{end}}", "/a:true /b:false "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
    ("{{range $i, $m := .Mounts}}{{$i}}{{$m.Source}} {{end}}", "0/a 1/b "),
    ("{{range $v := .Sizes}}{{$v}},{{end}}", "3,1,2,"),
    ("{{range .Ports}}x{{else}}none{{end}}", "none"),
    ("{{range .Mounts}}{{$.Name}}{{end}}", "/web/web"),
    ("{{$n := .Name}}{{with .Config}}{{$n}} {{.Image}}{{end}}", "/web busybox"),
    ('{{$x := "a"}}{{$x = "b"}}{{$x}}', "b"),
    ("{{range .Sizes}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}", "32"),
    ("{{range .Sizes}}{{if eq . 1}}{{break}}{{end}}{{.}}{{end}}", "3"),
    # if / else if / else, with
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .State.ExitCode}}failed{{else}}ok{{end}}", "ok"),
    ('{{if eq .State.Status "exited"}}E{{else if eq .State.Status "running"}}R{{else}}?{{end}}', "R"),
    ("{{if .Nope}}yes{{else}}no{{end}}", "no"),
    ("{{with .Config}}{{.Image}}{{end}}", "busybox"),
    ("{{with .Config.Env}}set{{else}}unset{{end}}", "unset"),
    # comparisons and logic
    ("{{eq .State.Pid 42}} {{ne .State.Pid 42}} {{eq 1 2 1}}", "true false true"),
    ("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge \"b\" \"a\"}}", "true true false true"),
    ("{{and .State.Running .Name}} {{or .Ports .Name}} {{not .State.Running}}", "/web /web false"),
    ('{{if and .State.Running (eq .Config.Image "busybox")}}both{{end}}', "both"),
    # Docker's functions
    ('{{join .Config.Cmd " "}}', "sh -c sleep 1"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ('{{index (split "a:b:c" ":") 1}}', "b"),
    ("{{upper .Config.Image}} {{lower \"ABC\"}} {{title \"hello big world\"}}", "BUSYBOX abc Hello Big World"),
    ("{{truncate .Id 3}}|{{truncate .Id 12}}", "4f2|4f2a9c"),
    ("[{{pad .Config.Image 1 2}}][{{pad \"\" 1 2}}]", "[ busybox  ][]"),
    ("{{.Config.Image | upper}}", "BUSYBOX"),
    ('{{.Config.Image | printf "%s!" | upper}}', "BUSYBOX!"),
    # print, printf, println
    ('{{printf "%s has pid %d" .Name .State.Pid}}', "/web has pid 42"),
    ('{{printf "%-6s|%5s|%05d|%.2f|%q|%v|%t|%x" "ab" "cd" 42 .Ratio "q" .Sizes true 255}}',
     'ab    |   cd|00042|1.50|"q"|[3 1 2]|true|ff'),
    ('{{printf "%d %s" "x"}}', "%!d(string=x) %!s(MISSING)"),
    ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
    ("{{println .Name .State.Pid}}", "/web 42\n"),
    # literals, escapes, trim markers, comments, parentheses
    ('{{"tab\\there\\n"}}', "tab\there\n"),
    ("{{`raw\\t`}}", "raw\\t"),
    ("{{42}} {{-3}} {{0x10}} {{1.25}} {{true}}", "42 -3 16 1.25 true"),
    ("a  {{- .Config.Image -}}  \n b", "abusyboxb"),
    ("x{{/* a comment */}}y", "xy"),
    ("x {{- /* trimmed */ -}} y", "xy"),
    ("{{(index .Mounts 0).Source}}", "/a"),
    # literal text is kept verbatim, backslash-t included (Go semantics)
    ("{{.Id}}\\t{{.Name}}", "4f2a9c\\t/web"),
])
def test_render(template, expected):
    assert render(template, DATA) == expected


def test_render_whole_dot():
    assert render("{{.}}", {"b": [1, None], "a": {"x": False}}) == "map[a:map[x:false] b:[1 <nil>]]"
    assert render("{{.}}", "plain") == "plain"
    assert render("{{json .}}", {"b": 1, "a": "x<y>&"}) == '{"a":"x<y>&","b":1}'


def test_floats_print_as_go_does():
    assert render("{{.}}", 2.0) == "2"
    assert render("{{.}}", 1e6) == "1e+06"
    assert render("{{.}}", 123456.0) == "123456"
    assert render("{{.}}", 0.00001) == "1e-05"
    assert render("{{json .}}", [1e6, 0.5]) == "[1000000,0.5]"


def test_objects_with_attributes():
    @dataclass
    class Ctr:
        ID: str
        Labels: dict

        def Label(self, name):
            return self.Labels.get(name, "")

    ctr = Ctr(ID="abc", Labels={"env": "prod"})
    assert render('{{.ID}} {{.Label "env"}} [{{.Label "x"}}]', ctr) == "abc prod []"
    assert render("{{json .}}", ctr) == '{"ID":"abc","Labels":{"env":"prod"}}'
    with pytest.raises(InvalidArgument, match="can't evaluate field Nope in type Ctr"):
        render("{{.Nope}}", ctr)


def test_strict_mode_fails_on_missing_key_like_docker_inspect():
    with pytest.raises(InvalidArgument) as err:
        render("{{.Nope}}", DATA, strict=True)
    assert str(err.value) == ('template parsing error: template: :1:2: executing "" at <.Nope>: '
                              'map has no entry for key "Nope"')


@pytest.mark.parametrize("template, message", [
    # parse errors
    ("{{foo}}", 'template: :1: function "foo" not defined'),
    ("line1\n{{.X | bar}}", 'template: :2: function "bar" not defined'),
    ("{{if .X}}open", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{.X", "template: :1: unclosed action"),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{$nope}}", 'template: :1: undefined variable "$nope"'),
    ("{{(.X}}", "template: :1: unclosed left paren"),
    ("{{.X | }}", "template: :1: missing value for command"),
    ("{{if}}{{end}}", "template: :1: missing value for if"),
    ("{{/* open", "template: :1: unclosed comment"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{.X ! .Y}}", "template: :1: bad character U+0021 '!'"),
    # execution errors, with Go's position and context
    ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
    ("{{.Name.First}}", 'template: :1:2: executing "" at <.Name.First>: '
                        "can't evaluate field First in type string"),
    ("{{.State.Health.Status}}", 'template: :1:2: executing "" at <.State.Health.Status>: '
                                 "nil pointer evaluating interface {}.Status"),
    ("ab{{index .Sizes 5}}", 'template: :1:4: executing "" at <index .Sizes 5>: '
                             "error calling index: index out of range: 5"),
    ("{{join .Sizes}}", 'template: :1:2: executing "" at <join .Sizes>: '
                        "wrong number of args for join: want 2 got 1"),
    ("{{upper .State.Pid}}", 'template: :1:2: executing "" at <upper .State.Pid>: '
                             "wrong type for value; expected string; got int"),
    ('{{eq .State.Pid "42"}}', 'template: :1:2: executing "" at <eq .State.Pid "42">: '
                               "error calling eq: incompatible types for comparison"),
    ("{{range .Name}}x{{end}}", 'template: :1:8: executing "" at <.Name>: '
                                "range can't iterate over /web"),
    ("{{len .State.Pid}}", 'template: :1:2: executing "" at <len .State.Pid>: '
                           "error calling len: len of type int"),
])
def test_errors_are_one_docker_line(template, message):
    with pytest.raises(InvalidArgument) as err:
        render(template, DATA)
    assert str(err.value) == "template parsing error: " + message
    assert "\n" not in str(err.value)


def test_long_error_context_is_cut_at_20_chars():
    with pytest.raises(InvalidArgument) as err:
        render('{{index .Sizes 1 2 3 4 5 "padding"}}', DATA)
    assert 'at <index .Sizes 1 2 3 4...>: ' in str(err.value)


IMAGES = [
    {"Repository": "busybox", "Tag": "latest", "ID": "a416a98b71e2", "Size": "4.26MB"},
    {"Repository": "registry.example/team/app", "Tag": "1.2", "ID": "0c1f2b7ad931", "Size": "120MB"},
]
IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Size": "SIZE"}


def test_table_format_aligns_like_docker():
    out = format_rows("table {{.Repository}}\\t{{.Tag}}", IMAGES, IMAGE_HEADERS)
    assert out == (
        "REPOSITORY                  TAG\n"
        "busybox                     latest\n"
        "registry.example/team/app   1.2\n"
    )


def test_table_columns_are_at_least_10_wide():
    # Docker's tabwriter has minwidth 10: `docker volume ls` prints "DRIVER    VOLUME NAME".
    rows = [{"Driver": "local", "Name": "v1"}, {"Driver": "local", "Name": "data"}]
    out = format_rows("table {{.Driver}}\\t{{.Name}}", rows, {"Driver": "DRIVER", "Name": "VOLUME NAME"})
    assert out == "DRIVER    VOLUME NAME\nlocal     v1\nlocal     data\n"


def test_table_with_real_tabs_and_functions_in_header():
    out = format_rows("table {{.ID}}\t{{.Tag | upper}}\t{{truncate .Repository 4}}", IMAGES, IMAGE_HEADERS)
    assert out == (
        "IMAGE ID       TAG       REPOSITORY\n"
        "a416a98b71e2   LATEST    busy\n"
        "0c1f2b7ad931   1.2       regi\n"
    )


def test_table_alone_prints_default_columns_and_empty_list_prints_header():
    out = format_rows("table", IMAGES[:1], IMAGE_HEADERS)
    assert out == ("REPOSITORY   TAG       IMAGE ID       SIZE\n"
                   "busybox      latest    a416a98b71e2   4.26MB\n")
    assert format_rows("table {{.ID}}\\t{{.Size}}", [], IMAGE_HEADERS) == "IMAGE ID   SIZE\n"


def test_plain_format_one_line_per_row_no_header():
    out = format_rows("{{.ID}}: {{.Repository}}\\t{{.Tag}}", IMAGES, IMAGE_HEADERS)
    assert out == "a416a98b71e2: busybox\tlatest\n0c1f2b7ad931: registry.example/team/app\t1.2\n"
    assert format_rows("{{.ID}}", [], IMAGE_HEADERS) == ""


def test_json_format_is_one_object_per_line():
    out = format_rows("json", IMAGES, IMAGE_HEADERS)
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == IMAGES
    assert lines[0] == '{"ID":"a416a98b71e2","Repository":"busybox","Size":"4.26MB","Tag":"latest"}'


def test_bad_format_fails_even_with_no_rows():
    with pytest.raises(InvalidArgument, match='^template parsing error: template: :1: function "x" not defined$'):
        format_rows("table {{x}}", [], IMAGE_HEADERS)


def test_columns_matches_docker_spacing():
    assert columns([
        ["CONTAINER ID", "IMAGE", "COMMAND", "NAMES"],
        ["4f2a9c0b1d2e", "busybox", '"sh"', "web"],
    ]) == (
        "CONTAINER ID   IMAGE     COMMAND   NAMES\n"
        '4f2a9c0b1d2e   busybox   "sh"      web\n'
    )
    assert columns([]) == ""


def test_columns_pads_empty_cells_and_never_pads_the_last_column():
    out = columns([["NAME", "PORTS", "STATUS"], ["a-long-name-here", "", "Up"], ["b", "80/tcp", ""]])
    assert out == ("NAME               PORTS     STATUS\n"
                   "a-long-name-here             Up\n"
                   "b                  80/tcp    \n")
    assert all(not line.endswith(" ") for line in out.splitlines()[:2])


def test_wide_characters_count_double():
    assert columns([["名前", "X"], ["abcdefghijk", "Y"]]) == "名前          X\nabcdefghijk   Y\n"


def test_parsed_templates_are_cached_and_import_is_cheap():
    from berth.core.cli import template
    template.render("{{.Id}} cached", DATA)
    before = template._parse.cache_info().hits
    template.render("{{.Id}} cached", DATA)
    assert template._parse.cache_info().hits == before + 1
    # Cheap to import: nothing heavy loaded and no pattern compiled at import (compiling them all
    # cost ~9 ms; they compile on first use). Checked by what happens, not by a clock.
    code = ("import json, re, sys, berth.core.errors\n"
            "before, compiled = set(sys.modules), len(re._cache)\n"
            "import berth.core.cli.template\n"
            "print(sorted(set(sys.modules) - before), len(re._cache) - compiled)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, compiled = out.rsplit(" ", 1)
    assert set(eval(modules)) <= {"berth.core.cli", "berth.core.cli.template"}
    assert int(compiled) == 0


def test_widths_and_precisions_are_capped_as_go_caps_them():
    """Go's fmt refuses a width or precision above 10^6 (issue #11: `%999999999d` exhausted memory)."""
    from berth.core.cli import template

    out = template.render('{{printf "%3d|%1000001d|%.2000000f|%99999999999999999999s|" 7 2 3.0 "a"}}', {})
    assert out == "  7|%!(BADWIDTH)|%!(BADPREC)|%!(BADWIDTH)|"
    assert len(template.render('{{printf "%1000000d" 1}}', {})) == 1_000_000


def test_one_templates_output_is_bounded():
    from berth.core.cli import template
    from berth.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="output exceeds"):
        template.render('{{range .}}{{printf "%1000000d" 1}}{{end}}', list(range(100)))
    with pytest.raises(InvalidArgument, match="padding of more than"):
        template.render('{{pad "x" 100000000 0}}', {})
