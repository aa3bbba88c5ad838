"""The README and docs/ as promises (issue 20 item 15): each page that states a fact the
code decides (a flag, a key, an exit code, a task, a module, a test that proves something)
is checked against the code, and every link between the pages lands somewhere.

All of it reads files and the task namespace; nothing runs a task."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

from ops.commands import namespace
from ops.config import DEFAULTS, unknown_key
from ops.errors import ExitCode
from tests.helpers import REPO_ROOT, flags_of

DOCS = REPO_ROOT / "docs"
PAGES = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
NS = namespace()
TASKS = {primary: (aliases[0] if aliases else primary)  # backup.create is shown as backup
         for primary, aliases in NS.task_names.items()}


def read(name: str) -> str:
    return (REPO_ROOT / name).read_text()


def prose(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` there is not a heading)."""
    return re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)


def table(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line is ``header``, as stripped cells."""
    part = text[text.index(header + "\n"):].split("\n\n")[0]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in part.splitlines()[2:]]


def section(text: str, heading: str) -> str:
    """From ``heading`` (a whole line) to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start + 1:],
                                            flags=re.MULTILINE)][1:]
    return text[start:start + 1 + ends[0]] if ends else text[start:]


# ---------------------------------------------------------------- the README's first screen

def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_same_tests():
    readme = read("README.md").splitlines()
    assert readme[2] == "```bash", readme[:3]  # the title, a blank line, then the commands
    demo, tests = readme[3], readme[4]
    assert demo.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
                           ".venv/bin/invoke demo "), demo
    assert tests.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
                            ".venv/bin/pytest"), tests
    readme_pytest = tests.split("#")[0].split("&&")[-1].strip()
    ci_lines = [line for line in read(".ci/run").splitlines() if ".venv/bin/pytest" in line]
    assert len(ci_lines) == 1, ci_lines
    assert ci_lines[0].split("&&")[-1].strip() == readme_pytest, (ci_lines, readme_pytest)


# ---------------------------------------------------------------- README: the task table

def task_table() -> dict[str, tuple[str, str]]:
    rows = table(read("README.md"), "| task | what it does | example |")
    found = {}
    for task, what, example in rows:
        assert task.startswith("`") and example.startswith("`invoke "), (task, example)
        found[task.strip("`")] = (what, example.strip("`"))
    return found


def test_every_task_is_in_the_readmes_task_table_with_an_example_that_parses():
    rows = task_table()
    assert set(rows) == set(TASKS.values())
    shown = {name: primary for primary, name in TASKS.items()}
    for name, (what, example) in rows.items():
        argv = shlex.split(example)
        assert argv[:2] == ["invoke", name] and what, example
        for word in argv[2:]:
            if word.startswith("-"):
                assert word in flags_of(shown[name]), (name, word)


# ---------------------------------------------------------------- docs/flags.md

def flag_table() -> dict[str, tuple[str, set[str]]]:
    """docs/flags.md's short-flag table: ``{"-n": ("dry-run", {"backup", ...})}``."""
    rows = {}
    for flags, _, tasks in table(read("docs/flags.md"), "| flags | meaning | tasks |"):
        found = re.fullmatch(r"`-(\w)` `--([\w-]+)`|`--([\w-]+)` \(no short form\)", flags)
        assert found, flags
        short = "-" + found.group(1) if found.group(1) else None
        long = found.group(2) or found.group(3)
        rows[short or "--" + long] = (long, {t.strip() for t in tasks.split(",")})
    return rows


def test_the_flag_table_lists_every_short_flag_with_exactly_the_tasks_that_have_it():
    actual: dict[str, tuple[set[str], set[str]]] = {}
    for primary, shown in TASKS.items():
        for arg in NS[primary].get_arguments():
            for short in (n for n in arg.names if len(n) == 1):
                longs, tasks = actual.setdefault("-" + short, (set(), set()))
                longs.add(arg.names[0])
                tasks.add(shown)
    rows = flag_table()
    assert {k: v for k, v in actual.items() if len(v[0]) > 1} == {}  # one meaning each
    assert rows.pop("-h") == ("help", {"every task"})
    with_host = {shown for primary, shown in TASKS.items() if "--host" in flags_of(primary)}
    assert rows.pop("--host") == ("host", with_host)
    assert {short: (longs.pop(), tasks) for short, (longs, tasks) in actual.items()} == rows


# ---------------------------------------------------------------- docs/configuration.md

def config_table() -> dict[tuple[str, str], tuple[str, str]]:
    rows = {}
    for key, default, env in table(read("docs/configuration.md"),
                                   "| key | default | env override |"):
        section_, name = re.fullmatch(r"`(\w+)\.(\w+)`", key).groups()
        rows[(section_, name)] = (default, env)
    return rows


def test_every_configuration_key_is_documented_with_its_default_and_variable():
    rows = config_table()
    declared = {(s, k): value for s, keys in DEFAULTS.items() for k, value in keys.items()}
    assert set(rows) == set(declared)
    for (section_, name), (default, env) in rows.items():
        variable = f"INVOKE_{section_.upper()}_{name.upper()}"
        value = declared[(section_, name)]
        if isinstance(value, dict):  # a mapping: one variable per key, every value shown
            assert env == ", ".join(f"`{variable}_{key.upper()}`" for key in value), env
            assert default.startswith("`{" + ", ".join(f"{k}: {v}" for k, v in value.items())
                                      + "}`"), (name, default)
            continue
        assert env == f"`{variable}`", (section_, name, env)
        if declared[(section_, name)]:  # an empty default is described in words
            assert default.startswith(f"`{declared[(section_, name)]}`"), (name, default)


def test_every_documented_key_is_known_and_a_misspelling_is_not():
    """review-ox 5: unknown keys in our sections are refused, so nothing the table of
    docs/configuration.md documents may be among them."""
    listed = re.findall(r"^\| `(\w+)\.(\w+)` \|", read("docs/configuration.md"), flags=re.M)
    ours = [(section_, key) for section_, key in listed if section_ in DEFAULTS]
    assert len(ours) >= 28, ours
    for section_, key in ours:
        assert unknown_key({section_: {key: "x"}}) is None, (section_, key)
    assert unknown_key({"backup": {"kep": 3}}).startswith(
        "unknown key backup.kep (did you mean backup.keep?")
    assert unknown_key({"run": {"echo": True}, "mine": {"x": 1}}) is None  # not ours


# ---------------------------------------------------------------- docs/exit-codes.md

def test_every_exit_code_is_documented_with_its_number_and_name():
    rows = table(read("docs/exit-codes.md"), "| code | name (`ops/errors.py`) | meaning |")
    documented = {(int(code), name.strip("`")) for code, name, meaning in rows if meaning}
    assert len(documented) == len(rows)
    assert documented == {(code.value, code.name) for code in ExitCode}


# ---------------------------------------------------------------- docs/layout.md

def layout() -> dict[str, str]:
    block = read("docs/layout.md").split("```\n", 1)[1].split("```", 1)[0]
    entries = {}
    for line in block.splitlines():
        path, _, what = line.partition(" ")
        entries[path] = what.strip()
    return entries


def test_the_layout_lists_every_module_and_only_what_exists():
    entries = layout()
    modules = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "ops").rglob("*")
               if p.suffix in (".py", ".js") and "__pycache__" not in p.parts}
    folders = {Path(m).parent.as_posix() + "/" for m in modules} - {"ops/"}
    empty_inits = {m for m in modules
                   if m.endswith("__init__.py") and "def " not in read(m)}  # a docstring only
    assert sorted(modules - empty_inits - set(entries)) == []
    assert sorted(folders - set(entries)) == []
    assert sorted(p for p in entries if not (REPO_ROOT / p).exists()) == []
    assert all(entries.values()), entries  # one line each, saying what lives there


# ---------------------------------------------------------------- the README's CI section

def test_the_60_day_rule_and_each_workflows_token_are_documented():
    ci = section(read("README.md"), "## CI")
    assert "60 days" in ci and "60 days" in read(".github/workflows/scheduled.yml")
    assert "fly tokens create deploy -a step-app-4x-yhw" in ci
    assert "fly tokens create ssh -a step-app-4x-yhw" in ci
    assert "internal/command/tokens/create.go" in ci  # where the answer comes from


# ---------------------------------------------------------------- links and cited tests

def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", prose(text), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, unique = 0, slug
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_points_to_a_file_and_anchor_that_exist(page):
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", prose(page.read_text()))
    assert links or page.name == "README.md", page  # every docs page links back at least
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https://, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_file(), (page.name, link)
        if anchor:
            assert anchor in anchors(target.read_text()), (page.name, link)


def test_every_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", read("README.md")))
    assert linked == {p.name for p in DOCS.glob("*.md")}


def test_every_test_a_page_cites_exists():
    """A page that says "the test that proves it" must name a test that is there."""
    defined: dict[str, set[str]] = {}
    for path in (REPO_ROOT / "tests").glob("test_*.py"):
        defined[path.name] = set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(),
                                            flags=re.MULTILINE))
    everywhere = set().union(*defined.values())
    cited = 0
    for page in PAGES:
        text = page.read_text()
        for file, name in re.findall(r"tests/(test_\w+\.py)(?:::(test_[\w*]+))?", text):
            assert file in defined, (page.name, file)
            if name:
                assert fnmatch.filter(defined[file], name), (page.name, file, name)
            cited += 1
        for name in re.findall(r"`(test_\w+)`", text):
            assert name in everywhere, (page.name, name)
            cited += 1
    assert cited > 50, cited
