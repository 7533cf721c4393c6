"""The Go text/template subset behind `--format`: values, control flow, functions, Go's errors."""

from __future__ import annotations

import pytest

from minidocker.cli import gotemplate
from minidocker.cli.gotemplate import ExecError, TemplateError, format_value, go_json, parse
from minidocker.cli.output import format_items, tabwrite

DATA = {
    "Name": "/web",
    "Args": ["-c", "sleep 1"],
    "State": {"Status": "running", "Pid": 42, "Running": True, "Health": None},
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "<1>"}, "Entrypoint": None, "Tty": False},
    "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "LogConfig": {"Type": "json-file", "Config": {}}},
}  # fmt: skip


def run(text: str, data: object = DATA, **kw: bool) -> str:
    return parse(text).execute(data, **kw)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{{.Name}}", "/web"),
        ("{{.State.Pid}}", "42"),
        ("{{.State.Running}}", "true"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Labels}}", "map[a:<1> b:2]"),
        # Docker's typed structs: nil slice [], nil pointer <nil>, struct {v v}
        ("{{.Config.Entrypoint}}|{{.State.Health}}", "[]|<nil>"),
        ("{{.HostConfig.RestartPolicy}}", "{no 0}"),
        ("{{.HostConfig.LogConfig}}", "{json-file map[]}"),
        ("{{json .Config.Labels}}", '{"b":"2","a":"<1>"}'),
        ("{{json .Config.Entrypoint}}", "null"),
        ("{{json .}}", go_json(DATA)),
        ('{{index .Config.Labels "b"}}', "2"),
        ('{{index .Config.Labels "zz"}}', ""),
        ("{{index .Args 1}}", "sleep 1"),
        ('{{join .Args " "}}', "-c sleep 1"),
        ("{{range .Config.Env}}{{.}};{{end}}", "A=1;B=2;"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=<1>,b=2,"),
        ("{{range $i, $e := .Args}}{{$i}}{{end}}", "01"),
        ("{{range .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
        ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
        ("{{if .Config.Tty}}t{{else if .State.Running}}r{{else}}n{{end}}", "r"),
        ("{{if not .Config.Tty}}no tty{{end}}", "no tty"),
        ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/42"),
        ("{{$n := .Name}}{{$n}}{{$n}}", "/web/web"),
        ('{{lower (upper .Name)}}|{{.Name | upper}}|{{title "hello world"}}', "/web|/WEB|Hello World"),
        ('{{split "a:b" ":"}}', "[a b]"),
        ("{{len .Args}} {{len .Config.Labels}}", "2 2"),
        ('{{printf "%s=%d %q %5s|%-3s|" .Name .State.Pid .Name "x" "y"}}', '/web=42 "/web"     x|y  |'),
        ("{{truncate .Name 2}}|{{pad .Name 1 2}}|", "/w| /web  |"),
        ("{{println .Name}}", "/web\n"),
        ("a {{- /* comment */ -}}  b\n  {{- .Name}}", "ab/web"),
        ('{{and .State.Running .Name}}|{{or .Config.Tty "x"}}', "/web|x"),
        ("{{if and (gt .State.Pid 1) (lt .State.Pid 100)}}ok{{end}}", "ok"),
        ("{{.}}", format_value(DATA)),
        ('{{"a}}b"}}', "a}}b"),
    ],
)
def test_render(text: str, want: str) -> None:
    assert run(text) == want


def test_missing_keys() -> None:
    assert run("{{.Nope}}") == "<no value>"
    with pytest.raises(ExecError) as e:
        run("x\n {{.State.Nope}}", missingkey_error=True)
    assert str(e.value) == 'template: :2:3: executing "" at <.State.Nope>: map has no entry for key "Nope"'
    assert e.value.partial == "x\n "
    # omitempty fields that exist in Docker's structs are zero values, not errors
    assert run("{{.SizeRw}}|{{.Config.StopSignal}}|", {"Config": {}}, missingkey_error=True) == "<nil>||"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.State.Pid", "template: :1: unclosed action"),
        ("{{nope .X}}", 'template: :1: function "nope" not defined'),
        ("{{if .X}}a", "template: :1: unexpected EOF"),
        ("a\n{{end}}", "template: :2: unexpected {{end}}"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        parse(text)
    assert str(e.value) == message
    assert not isinstance(e.value, ExecError)


class Ctx:
    go_type = "*formatter.ContainerContext"

    def ID(self) -> str:  # noqa: N802
        return "abc"

    def Label(self, name: str) -> str:  # noqa: N802
        return f"L[{name}]"


def test_objects_methods_and_errors() -> None:
    assert run('{{.ID}} {{.Label "k"}}', Ctx()) == "abc L[k]"
    with pytest.raises(ExecError) as e:
        run("{{.Nope}}", Ctx())
    assert "can't evaluate field Nope in type *formatter.ContainerContext" in str(e.value)
    with pytest.raises(ExecError):
        run("{{.Name 1}}")


def test_tabwriter_like_go() -> None:
    # Docker: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0); the last cell is not padded
    text = "CONTAINER ID\tNAMES\tX\nab\tc\t\n"
    assert tabwrite(text) == "CONTAINER ID   NAMES     X\nab             c         \n"
    # column blocks: a column only spans consecutive lines that have it
    assert tabwrite("a\tb\tc\nlong-cell\n1\t2\n", minwidth=0, padding=1) == "a b c\nlong-cell\n1 2\n"


def test_table_format_header_and_functions() -> None:
    out = format_items(
        "table {{.ID}}\\t{{lower .Label}}",
        [{"ID": "x1", "Label": "AB"}],
        {"ID": "CONTAINER ID", "Label": "LABEL"},
    )
    assert out == "CONTAINER ID   LABEL\nx1             ab\n"
    assert format_items("{{.ID}}", [{"ID": "1"}, {"ID": "2"}], {}) == "1\n2\n"
    assert format_items("table {{.ID}}", [], {"ID": "CONTAINER ID"}) == "CONTAINER ID\n"
    assert gotemplate.HEADER_FUNCS["json"]("X") == "X"
