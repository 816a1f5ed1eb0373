"""The shape of the code, checked with every test run: small modules, no import cycle, no repeated blocks.

The layer contracts themselves are import-linter's (`[tool.importlinter]` in pyproject.toml), run by
tests/test_code_quality.py."""

from __future__ import annotations

import io
import keyword
import statistics
import tokenize
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers")
MAX_LINES = 400
MEDIAN_LINES = 150
SAME_BLOCK = 11  # lines: a block longer than 10 lines may stand in one place only
# Python 3.12 splits an f-string into tokens of its own; 3.11 reads it as one string
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)
_FSTRING_REST = {getattr(tokenize, n, -1) for n in ("FSTRING_MIDDLE", "FSTRING_END")}
VARIED = 6  # fewer kinds of line than this in a window is a list of declarations, not logic
THIN = 4  # a window whose lines average fewer tokens than this is punctuation and names, not logic


def production_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_is_over_400_lines_and_the_median_is_under_150() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in production_files()}
    large = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not large, f"modules over {MAX_LINES} lines: {large}"
    median = statistics.median(sizes.values())
    assert median < MEDIAN_LINES, f"median module size {median} lines"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_among_modules_function_local_imports_included() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    # a package's __init__ importing its own modules is how a package presents itself, not a cycle
    for module in list(graph.modules):
        for child in graph.find_children(module):
            if graph.direct_import_exists(importer=module, imported=child):
                graph.remove_import(importer=module, imported=child)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [["a", "b", "c"]]


def _lines(source: str) -> list[tuple[int, str]]:
    """Each logical line as (first line number, its shape): names, strings and numbers stand for any other;
    imports, comments, docstrings and blank lines are left out."""
    shaped: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
            continue
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if current and current[0] not in ("import", "from") and current != ["S"]:
                shaped.append((start, " ".join(current)))
            current = []
            continue
        if not current:
            start = tok.start[0]
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
            current.append("N")
        elif tok.type in (tokenize.STRING, _FSTRING_START):
            current.append("S")
        elif tok.type in _FSTRING_REST:
            continue
        elif tok.type == tokenize.NUMBER:
            current.append("0")
        else:
            current.append(tok.string)
    return shaped


def repeated_blocks(files: dict[str, str], size: int = SAME_BLOCK) -> list[tuple[str, str]]:
    """Places where `size` logical lines stand again elsewhere, alike but for names, strings and numbers."""
    seen: dict[str, list[str]] = defaultdict(list)
    for name, source in files.items():
        lines = _lines(source)
        for i in range(len(lines) - size + 1):
            window = [shape for _, shape in lines[i : i + size]]
            if sum(len(w.split()) for w in window) < THIN * size or len(set(window)) < VARIED:
                continue
            seen["\n".join(window)].append(f"{name}:{lines[i][0]}")
    pairs = []
    for first, *others in seen.values():
        pairs.extend((first, other) for other in others if _apart(first, other, size))
    return sorted(pairs)


def _apart(a: str, b: str, size: int) -> bool:
    (file_a, line_a), (file_b, line_b) = a.rsplit(":", 1), b.rsplit(":", 1)
    return file_a != file_b or abs(int(line_a) - int(line_b)) >= size


def test_no_block_of_more_than_ten_lines_is_repeated_even_renamed() -> None:
    files = {p.relative_to(ROOT).as_posix(): p.read_text() for p in production_files()}
    assert repeated_blocks(files) == []


COPIED = """
def settle(orders, limit):
    total = 0
    seen = set()
    for order in orders:
        if order.id in seen:
            continue
        seen.add(order.id)
        if order.amount > limit:
            raise ValueError(f"order {order.id} is over the limit")
        total += order.amount * order.rate
    rounded = round(total, 2)
    log.info("settled %d orders", len(seen))
    return rounded, sorted(seen)
"""


def test_the_duplicate_finder_sees_a_renamed_copy() -> None:
    renamed = COPIED.replace("order", "row").replace("total", "acc").replace("limit", "cap").replace("2", "4")
    files = {
        "a.py": COPIED,
        "b.py": "x = 1\n" + renamed,
        "c.py": COPIED.replace("        seen.add(row.id)", ""),
    }
    found = {(a.split(":")[0], b.split(":")[0]) for a, b in repeated_blocks(files)}
    assert found == {("a.py", "b.py"), ("a.py", "c.py")}


def test_the_duplicate_finder_lets_ten_lines_and_declarations_be() -> None:
    ten = "\n".join(COPIED.splitlines()[:11])  # the def line and ten lines of its body
    fields = "".join(f"    field_{i}: str | None = None\n" for i in range(20))
    files = {"a.py": ten, "b.py": ten, "c.py": f"class A:\n{fields}", "d.py": f"class B:\n{fields}"}
    assert repeated_blocks(files) == []
