"""The docs name only real commands, and every command documents itself.

Every `xmore …` command line quoted in the README files, the Makefile, the
help texts and the string literals of the package (error messages, warnings)
must resolve in the CLI's command tree: its subcommand words, and each option
it names. (sqlite-utils keeps such a test in `tests/test_docs.py`.)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from xmore_db.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "deploy").glob("*.md")),
        *sorted((ROOT / "docs").glob("*.md"))]
PACKAGE = ROOT / "xmore_db"

# Prose that puts a word after "xmore" without naming a command.
NOT_COMMANDS = {"schema", "record"}

_QUOTED = re.compile(r"`(xmore(?:\s[^`]*)?)`")
_BARE = re.compile(r"(?<![\w./-])xmore(?=\s)[^`'\"();:\n]*")
_OPTION = re.compile(r"-{1,2}[A-Za-z][\w-]*")
_ALTERNATIVE = re.compile(r"\s\\?\|\s")


def cli():
    """The click command tree (typer vendors its own click, so the tree is duck-typed here)."""
    return typer.main.get_command(app)


def _is_group(command) -> bool:
    return hasattr(command, "commands")


def _is_option(param) -> bool:
    return getattr(param, "param_type_name", None) == "option"


def mentions(text: str) -> Iterator[str]:
    """Each `xmore …` command line in a text: backtick spans first, then bare ones in prose."""
    text = text.replace("\\\n", " ")  # shell line continuations
    for match in _QUOTED.finditer(text):
        yield match.group(1)
    for match in _BARE.finditer(_QUOTED.sub(" ", text)):
        yield match.group(0).split(" #")[0]


def problem(line: str, root=None) -> str | None:
    """Why `line` (starting with "xmore") is not a real command line; None if it is."""
    root = root or cli()
    pieces = _ALTERNATIVE.split(line.strip())
    words = pieces[0].split()[1:]
    found, parent = _walk(root, words, "xmore")
    if isinstance(found, str):
        return found
    for piece in pieces[1:]:  # `xmore corpora list | show NAME | delete NAME`: alternatives in one group
        if piece.split() and re.fullmatch(r"[a-z][a-z0-9-]*", piece.split()[0]):
            found, _ = _walk(parent[0], piece.split(), parent[1])
            if isinstance(found, str):
                return found
    return None


def _walk(command, words: list[str], path: str):
    parent = (command, path)
    i = 0
    while i < len(words):
        word = words[i].strip("[]{}")
        i += 1
        if _OPTION.fullmatch(word.split("=")[0]):
            option = _find_option(command, word.split("=")[0])
            if option is None:
                return f"`{path}` has no option {word.split('=')[0]}", parent
            if _is_group(command) and not (option.is_flag or option.count or "=" in word):
                i += 1  # a group's option value, e.g. `xmore --home DIR status`
            continue
        if not _is_group(command):
            continue  # an argument or a placeholder of a command: only its options are checked
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break  # COMMAND, …, PATH: a placeholder
        if word in NOT_COMMANDS and path == "xmore":
            break
        sub = command.commands.get(word)
        if sub is None:
            return f"`{path}` has no command {word!r} (it has {', '.join(sorted(command.commands))})", parent
        parent = (command, path)
        command, path = sub, f"{path} {word}"
    return command, parent


class _Help:
    is_flag, count = True, False


def _find_option(command, name: str):
    if name == "--help":
        return _Help()
    for param in command.params:
        if _is_option(param) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _commands(command, path: str = "xmore") -> Iterator[tuple[str, object]]:
    yield path, command
    if _is_group(command):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}")


def help_texts() -> Iterator[tuple[str, str]]:
    for path, command in _commands(cli()):
        for text in (command.help, command.short_help, command.epilog):
            if text:
                yield path, text
        for param in command.params:
            if getattr(param, "help", None):
                yield f"{path} {param.name}", param.help


def string_literals() -> Iterator[tuple[str, str]]:
    """Every string constant in the package, f-strings' literal parts included."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node.value


def _bad(sources: Iterator[tuple[str, str]]) -> list[str]:
    root = cli()
    found = []
    for where, text in sources:
        for line in mentions(text):
            why = problem(line, root)
            if why:
                found.append(f"{where}: {line.strip()!r}: {why}")
    return found


# -- the checker itself --------------------------------------------------------

@pytest.mark.parametrize("line", [
    "xmore init", "xmore --home DIR status", "xmore cache-captions --rebuild",
    "xmore corpora list \\| show NAME \\| delete NAME [--yes]",
    "xmore classify IMAGE... --labels FILE --stream NAME [--normalize minmax\\|l1\\|none]",
    "xmore retrieve IMAGE [--coarse] [-K 128] [-k 16]", "xmore streams show NAME --last 5",
])
def test_real_command_lines_pass(line):
    assert problem(line) is None


@pytest.mark.parametrize("line, why", [
    ("xmore captions cache --rebuild", "has no command 'captions'"),
    ("xmore streams drop NAME", "`xmore streams` has no command 'drop'"),
    ("xmore corpora list | show NAME | purge NAME", "`xmore corpora` has no command 'purge'"),
    ("xmore cache-captions --rebiuld", "has no option --rebiuld"),
])
def test_unreal_command_lines_fail(line, why):
    assert why in problem(line)


def test_mentions_in_prose_and_code():
    text = ("run `xmore init` first (xmore corpora show shows the errors); "
            "`xmore captions cache --rebuild` replaces it\n```\nxmore eval --dataset a \\\n  --seeds 0,1\n```")
    assert list(mentions(text)) == ["xmore init", "xmore captions cache --rebuild",
                                    "xmore corpora show shows the errors", "xmore eval --dataset a    --seeds 0,1"]


# -- the project's texts ---------------------------------------------------------

def test_docs_name_only_real_commands():
    bad = _bad((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in DOCS if path.exists())
    assert not bad, "\n".join(bad)


def test_help_texts_name_only_real_commands():
    bad = _bad(help_texts())
    assert not bad, "\n".join(bad)


def test_messages_name_only_real_commands():
    bad = _bad(string_literals())
    assert not bad, "\n".join(bad)


def test_every_command_and_option_has_help():
    missing = [path for path, command in _commands(cli()) if not (command.help or "").strip()]
    missing += [f"{path} {param.name}" for path, command in _commands(cli()) for param in command.params
                if _is_option(param) and not (param.help or "").strip()]
    assert not missing, "no help text: " + ", ".join(missing)
