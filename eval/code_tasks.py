"""The fixed development tasks of the code benchmark (`python -m eval.code`).

A task cuts one function out of a Python module: the **context** is the module without the function
(decorators through its last line), the **instruction** (the query) is the function's decorators,
signature and docstring, and the **target** is the rest of its body. The compressor sees the context
and the instruction; the gap's character offset travels as the document's metadata "cut".

Three groups, from the fixed lists of (module, function) below:

- `stdlib`: the 20 functions the benchmark always used, cut from modules of the **eval** split of
  `eval.datasets.load_stdlib_modules` (Python 3.11.7). Contexts are 2,000-4,500 SmolLM2 tokens, so the
  full context, the instruction and the target fit SmolLM2's window and target NLL can be measured.
- `third-party`: 20 functions from 20 large modules (8k-27k cl100k tokens) of 15 pure-Python packages
  installed in the venv, at the versions listed. The modules were chosen by size and package
  (numpy, transformers, sympy, networkx, jinja2, requests, pandas, scikit-learn, aiohttp, dateutil,
  packaging, tqdm, urllib3, langchain-core); PyYAML was considered but has no documented function of
  the right size. rich, click, httpx, pydantic, typer, fastapi and starlette are never used: they are
  kept for a held-out check.

- `repo`: the third-party tasks again, each with up to 3 modules of the same package that the task's
  module imports at top level (in import order; modules over 25k tokens skipped; tasks whose module
  imports no sibling left out), compressed together as a repository. The budget covers them all.

The function in each module was picked as the original benchmark picks: among the top-level
functions and methods of top-level classes that have a docstring, a body of 6-60 lines after it
and at least two statements, the one at index sha1(module path) mod their count. No task was
chosen or dropped after seeing a method's result.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sysconfig
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ctxzip import Document

STDLIB_VERSION = "3.11.7"

STDLIB_TASKS: tuple[tuple[str, str], ...] = (
    ("copy.py", "copy"),
    ("distutils/command/build_py.py", "build_py.find_all_modules"),
    ("distutils/command/config.py", "config.check_func"),
    ("distutils/cygwinccompiler.py", "CygwinCCompiler.object_filenames"),
    ("email/generator.py", "Generator.flatten"),
    ("idlelib/browser.py", "ModuleBrowserTreeItem.listchildren"),
    ("idlelib/colorizer.py", "ColorDelegator.LoadTagDefs"),
    ("idlelib/debugger_r.py", "start_remote_debugger"),
    ("idlelib/hyperparser.py", "HyperParser.get_surrounding_brackets"),
    ("idlelib/query.py", "Query.ok"),
    ("importlib/util.py", "module_for_loader"),
    ("json/__init__.py", "dump"),
    ("lib2to3/fixer_util.py", "ListComp"),
    ("multiprocessing/resource_tracker.py", "ResourceTracker._check_alive"),
    ("multiprocessing/util.py", "get_logger"),
    ("quopri.py", "needsquoting"),
    ("types.py", "new_class"),
    ("unittest/suite.py", "BaseTestSuite._removeTestAtIndex"),
    ("wsgiref/validate.py", "validator"),
    ("xml/sax/saxutils.py", "escape"),
)

# (distribution, version the list was made with, module path, function)
THIRD_PARTY_TASKS: tuple[tuple[str, str, str, str], ...] = (
    ("numpy", "2.4.6", "numpy/_core/numeric.py", "full"),
    ("numpy", "2.4.6", "numpy/lib/_shape_base_impl.py", "kron"),
    ("transformers", "5.24.0", "transformers/cache_utils.py", "LinearAttentionCacheLayerMixin.is_croppable"),
    ("transformers", "5.24.0", "transformers/configuration_utils.py", "get_configuration_file"),
    ("sympy", "1.14.0", "sympy/sets/sets.py", "simplify_union"),
    ("sympy", "1.14.0", "sympy/geometry/line.py", "Segment.distance"),
    ("networkx", "3.6.1", "networkx/classes/graph.py", "Graph.remove_edges_from"),
    ("networkx", "3.6.1", "networkx/algorithms/shortest_paths/weighted.py", "_weight_function"),
    ("jinja2", "3.1.6", "jinja2/compiler.py", "CodeGenerator.visit_Include"),
    ("jinja2", "3.1.6", "jinja2/environment.py", "copy_cache"),
    ("requests", "2.34.2", "requests/models.py", "PreparedRequest.prepare"),
    ("requests", "2.34.2", "requests/utils.py", "guess_json_utf"),
    ("pandas", "3.1.1", "pandas/core/indexes/range.py", "RangeIndex.from_range"),
    ("scikit-learn", "1.9.1", "sklearn/pipeline.py", "Pipeline._iter"),
    ("aiohttp", "3.14.5", "aiohttp/connector.py", "TCPConnector._get_ssl_context"),
    ("python-dateutil", "4.0.0", "dateutil/rrule.py", "rrulebase.after"),
    ("packaging", "26.4", "packaging/specifiers.py", "SpecifierSet.contains"),
    ("tqdm", "4.70.1", "tqdm/std.py", "tqdm.close"),
    ("urllib3", "2.8.0", "urllib3/connectionpool.py", "HTTPConnectionPool.close"),
    ("langchain-core", "1.8.3", "langchain_core/tools/base.py", "BaseTool.__getstate__"),
)

GROUPS = ("stdlib", "third-party", "repo")
REPO_SIBLINGS = 3  # same-package modules the task module imports, in import order
REPO_SIBLING_TOKENS = 25_000  # larger siblings are skipped
HELD_OUT_PACKAGES = frozenset({"rich", "click", "httpx", "pydantic", "typer", "fastapi", "starlette"})


@dataclass
class CodeTask:
    group: str
    path: str
    function: str
    context: str
    cut: int  # character offset in `context` where the function stood
    instruction: str
    target: str
    version: str = ""
    context_tokens: int = 0  # in cl100k, siblings included
    target_tokens: int = 0
    siblings: list[tuple[str, str]] = field(default_factory=list)  # (path, text) of other modules given along

    @property
    def key(self) -> str:
        return f"{self.group}:{self.path}:{self.function}"

    def document(self, hint: bool = True) -> Document:
        metadata = {"path": self.path, "cut": self.cut} if hint else {"path": self.path}
        return Document(self.context, id=self.path, metadata=metadata)

    def documents(self, hint: bool = True) -> list[Document]:
        """The task's module, then the sibling modules (a repository task)."""
        return [self.document(hint)] + [Document(text, id=path, metadata={"path": path}) for path, text in self.siblings]

    @property
    def full_context(self) -> str:
        return "\n\n".join([self.context] + [text for _, text in self.siblings])


def find_function(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """A top-level function ("name") or a method of a top-level class ("Class.name")."""
    *owner, name = qualname.split(".")
    scope = tree.body
    if owner:
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner[0]]
        if not classes:
            raise LookupError(f"no class {owner[0]}")
        scope = classes[0].body
    for node in scope:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    raise LookupError(f"no function {qualname}")


def cut_function(group: str, path: str, text: str, qualname: str, version: str = "") -> CodeTask:
    """The task for `qualname` in a module's text (see the module docstring)."""
    fn = find_function(ast.parse(text), qualname)
    docstring = fn.body[0]
    lines = text.splitlines(keepends=True)
    first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
    before, after = "".join(lines[: first - 1]), "".join(lines[fn.end_lineno:])
    return CodeTask(group, path, qualname.split(".")[-1], before + after, len(before),
                    "".join(lines[first - 1: docstring.end_lineno]),
                    "".join(lines[docstring.end_lineno: fn.end_lineno]).rstrip() + "\n", version)


def _site(path: str) -> Path:
    top = path.split("/")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {top} is not installed")
    return Path(spec.submodule_search_locations[0]).parent


def _module_text(path: str) -> str:
    return (_site(path) / path).read_text(encoding="utf-8")


def sibling_modules(path: str, text: str, counter) -> list[tuple[str, str]]:
    """Modules of the same package that `path` imports at top level (relative or absolute), in
    import order, at most REPO_SIBLINGS of at most REPO_SIBLING_TOKENS tokens each."""
    site, top = _site(path), path.split("/")[0]
    package = path.split("/")[:-1]
    found: list[str] = []
    for node in ast.parse(text).body:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            elif node.module and node.module.split(".")[0] == top:
                base = []
            else:
                continue
            module = base + (node.module.split(".") if node.module else [])
            names = ["/".join(module)] + ["/".join(module + [alias.name]) for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name.replace(".", "/") for alias in node.names if alias.name.split(".")[0] == top]
        for name in names:
            for candidate in (f"{name}.py", f"{name}/__init__.py"):
                if candidate != path and (site / candidate).is_file() and candidate not in found:
                    found.append(candidate)
    siblings = []
    for candidate in found:
        sibling_text = (site / candidate).read_text(encoding="utf-8")
        if counter.count(sibling_text) <= REPO_SIBLING_TOKENS and sibling_text.strip():
            siblings.append((candidate, sibling_text))
        if len(siblings) >= REPO_SIBLINGS:
            break
    return siblings


def build_group(group: str) -> list[CodeTask]:
    """The tasks of one group, in list order, with context and target sizes in cl100k tokens."""
    from ctxzip import get_token_counter

    counter = get_token_counter("cl100k_base")
    tasks = []
    if group == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        for path, qualname in STDLIB_TASKS:
            text = (root / path).read_text(encoding="utf-8")
            tasks.append(cut_function(group, path, text, qualname, f"Python {STDLIB_VERSION}"))
    elif group in ("third-party", "repo"):
        for distribution, version, path, qualname in THIRD_PARTY_TASKS:
            installed = importlib.metadata.version(distribution)
            if installed != version:
                warnings.warn(f"{distribution} {installed} is installed; the task list was made with {version}")
            text = _module_text(path)
            task = cut_function(group, path, text, qualname, f"{distribution} {installed}")
            if group == "repo":
                task.siblings = sibling_modules(path, text, counter)
                if not task.siblings:
                    continue
            tasks.append(task)
    else:
        raise ValueError(f"unknown task group {group!r}; choose from {GROUPS}")
    for task in tasks:
        task.context_tokens = counter.count(task.full_context)
        task.target_tokens = counter.count(task.target)
    return tasks
