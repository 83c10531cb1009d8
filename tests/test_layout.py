"""The package's import graph (issue 17): no import circle and no import of another module's
private name, read from the source with `ast` so that nothing is executed.

Every import counts, also those inside functions: a lazy import hides a circle from Python's
import machinery only until someone moves it to the top of the file. An edge goes to the module
actually named (`from pkg import name` -> `pkg.name` if that is a submodule, else `pkg`); the
parent packages that Python imports on the way are not edges, or every `__init__` that imports
its own modules would count as a circle.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "colora"


def module_files(root):
    """{dotted module name: file} for every .py file below the package folder `root`."""
    root = Path(root)
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name, path, is_package):
    """(line, target module, imported name or None) for every import statement of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from .x import y` in a.b.c means a.b.x
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base, alias.name


def import_graph(root):
    """({module: {imported module: first line}}, [(module, line, target, private name)])
    restricted to the modules below `root`."""
    modules = module_files(root)
    graph, private = {m: {} for m in modules}, []
    for name, path in modules.items():
        for line, target, imported in _imports(name, path, path.name == "__init__.py"):
            if imported is not None and f"{target}.{imported}" in modules:
                target = f"{target}.{imported}"  # a submodule, named in full
            elif imported is not None and imported.startswith("_") and not imported.startswith("__") \
                    and target in modules and target != name:
                private.append((name, line, target, imported))
            if target in modules:
                graph[name].setdefault(target, line)
    return graph, private


def circles(graph):
    """[(modules of one import circle, sorted; a shortest circle through the first, [m0, ..., m0])]:
    the strongly connected groups of the graph (Tarjan's algorithm), and modules importing themselves."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted((group, _shortest_circle(graph, group)) for group in groups)


def _shortest_circle(graph, group):
    start = group[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]]):
            if w == start:
                return path + [start]
            if w in group and w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError(f"no circle through {start}")  # a strongly connected group always has one


def describe(graph, circle):
    """`a (line 3) -> b (line 9) -> a`: each module with the line of its import of the next."""
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(circle, circle[1:])) + f" -> {circle[-1]}"


def test_no_import_circle():
    graph, _ = import_graph(PACKAGE)
    assert len(graph) > 50 and graph["colora.cli"]  # the walk found the package and its imports
    found = [f"{', '.join(group)}: {describe(graph, circle)}" for group, circle in circles(graph)]
    assert not found, "import circles:\n" + "\n".join(found)


def test_no_import_of_another_modules_private_name():
    graph, private = import_graph(PACKAGE)
    assert len(graph) > 50
    found = [f"{m} (line {line}) imports {name} from {target}" for m, line, target, name in private]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_walk_sees_lazy_relative_and_submodule_imports(tmp_path):
    """The checker itself, on a small package with one of each problem."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.sub import helper\n",  # a submodule: an edge to pkg.sub.helper
        "a.py": "import os\n\ndef f():\n    from pkg import b  # lazy\n",
        "b.py": "from .c import _secret\n",
        "c.py": "import pkg.a\n_secret = 1\n",
        "sub/__init__.py": "",
        "sub/helper.py": "from .. import a\nfrom . import _private_module\n",
        "sub/_private_module.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph, private = import_graph(pkg)
    assert graph["pkg"] == {"pkg.sub.helper": 1}
    assert graph["pkg.sub.helper"] == {"pkg.a": 1, "pkg.sub._private_module": 2}
    assert private == [("pkg.b", 1, "pkg.c", "_secret")]  # a private module is not a private name
    [(group, circle)] = circles(graph)
    assert group == ["pkg.a", "pkg.b", "pkg.c"]
    assert describe(graph, circle) == "pkg.a (line 4) -> pkg.b (line 1) -> pkg.c (line 1) -> pkg.a"
    (pkg / "c.py").write_text("import pkg.c\n_secret = 1\n")  # the circle broken, a module importing itself
    assert circles(import_graph(pkg)[0]) == [(["pkg.c"], ["pkg.c", "pkg.c"])]


def test_every_module_reads_in_one_sitting():
    """No module over 400 lines (issue 17: files you can read in one sitting)."""
    long = {name: n for name, path in module_files(PACKAGE).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_every_package_folder_is_a_package():
    """A folder of modules without __init__.py is a namespace package: it imports, but a wheel
    built with plain find_packages drops it (colora/tuning and colora/training once were)."""
    missing = [str(d.relative_to(PACKAGE)) for d in PACKAGE.rglob("*") if d.is_dir()
               and any(d.glob("*.py")) and not (d / "__init__.py").is_file()]
    assert not missing, f"folders of modules without __init__.py: {missing}"
