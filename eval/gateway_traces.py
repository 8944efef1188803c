"""Recorded gateway traces: the requests an unchanged app or an agent sends, built from real data.

    .venv/bin/python -m eval.gateway_traces            # rewrites eval/traces/gateway/*.json
    .venv/bin/python -m eval.gateway_traces --check    # exits 1 if a rebuild differs from what is committed

Every trace is deterministic (fixed examples from the eval splits, seeded `random.Random`), so the
committed files can be rebuilt byte for byte from ../shared/data and the Python standard library.
Each trace names, before any system has seen it, what must survive compression:

- `answer_bearing`: exact strings (gold supporting sentences, the answer sentence, the fields of the
  record that answers the question, the log lines that explain the failure), each with the index of the
  message that carries it; a string survives if it reaches the upstream in that message unchanged
  (as raw text or JSON-escaped, so a system that re-serialises JSON is not penalised);
- `verbatim`: strings that must arrive byte-identical (the user's question).

Kinds: `rag` (one user message "Context: <10 passages> Question: ..." in four common layouts),
`json` (search hits, an API listing, database rows as a tool result), `logs` (repetitive application
and test-runner logs as a tool result) and `agent` (20-turn tool-using sessions; turn t sends the
first `turns[t]` messages).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import sys
import sysconfig
from pathlib import Path

from eval.datasets import HotpotExample, load_hotpotqa, load_squad, load_stdlib_modules

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "traces" / "gateway"
MODEL = "gpt-4-turbo"  # a cl100k_base model name, so every system counts tokens in the same tokenizer
SYSTEM = "You are a careful assistant. Answer from the provided material only; say so when it is missing."

AGENT_TOOLS = [
    {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]},
    }}
    for name, description, arg in [
        ("search", "Full-text search over the knowledge base; returns ranked hits as JSON.", "query"),
        ("open_page", "Return the full text of a page by title.", "title"),
        ("list_files", "List files of a repository folder as JSON.", "path"),
        ("read_file", "Return the contents of a source file.", "path"),
        ("run_command", "Run a shell command and return its output.", "command"),
    ]
]


def _slug(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def appears(text: str, content) -> bool:
    """`text` is in a message content, raw or JSON-escaped (in either ASCII or UTF-8 JSON)."""
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    return any(form in content for form in (text, json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]))


def _trace(name: str, kind: str, source: str, messages: list[dict], answer_bearing: list[dict],
           verbatim: list[str], question: str, turns: list[int] | None = None, tools=None) -> dict:
    trace = {
        "name": name, "kind": kind, "api": "openai", "model": MODEL, "source": source, "question": question,
        "answer_bearing": answer_bearing, "verbatim": verbatim, "messages": messages,
        "turns": turns or [len(messages)],
    }
    if tools:
        trace["tools"] = tools
    for item in answer_bearing:  # a trace that names a string its own message lacks is a bug here
        if not appears(item["text"], messages[item["message"]]["content"]):
            raise AssertionError(f"{name}: answer-bearing text not in message {item['message']}")
    return trace


# -- RAG: one user message with context and question together ------------------------------------

LAYOUTS = ("question_marker", "context_tags", "rule", "trailing_question")


def rag_message(passages: list[tuple[str, str]], question: str, layout: str) -> str:
    """The prompt an unchanged app builds: numbered passages, then the question, in one of four layouts."""
    blocks = "\n\n".join(f"[{n}] {title}\n{text}" for n, (title, text) in enumerate(passages, 1))
    if layout == "question_marker":
        return f"Answer the question using the context below.\n\nContext:\n{blocks}\n\nQuestion: {question}\nAnswer:"
    if layout == "context_tags":
        return f"<context>\n{blocks}\n</context>\n\nUsing only the context above, answer: {question}"
    if layout == "rule":
        return f"{blocks}\n\n---\n\n{question}"
    return f"Here are some documents.\n\n{blocks}\n\n{question}"


def hotpot_rag(example: HotpotExample, layout: str, index: int) -> dict:
    passages = [(p.title, p.text) for p in example.paragraphs]
    content = rag_message(passages, example.question, layout)
    by_title = {p.title: p for p in example.paragraphs}
    gold = []
    for title, sent in example.supporting:
        p = by_title.get(title)
        if p is not None and sent < len(p.sentences) and p.sentences[sent].strip():
            gold.append({"message": 1, "text": p.sentences[sent].strip(), "what": f"supporting sentence {title}#{sent}"})
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
    return _trace(f"rag-hotpotqa-{index}", "rag", f"HotpotQA dev distractor {example.id}", messages, gold,
                  [example.question], example.question)


def squad_rags(count: int) -> list[dict]:
    """SQuAD: the question's paragraph and nine other paragraphs of the same article, shuffled."""
    by_title: dict[str, list[str]] = {}
    for ex in load_squad("eval", answerable=True):
        paragraphs = by_title.setdefault(ex.title, [])
        if ex.context not in paragraphs:
            paragraphs.append(ex.context)
    seen_titles: set[str] = set()
    traces = []
    for ex in load_squad("eval", answerable=True):
        if ex.title in seen_titles or len(by_title[ex.title]) < 10:
            continue
        seen_titles.add(ex.title)
        rng = random.Random(ex.id)
        others = [p for p in by_title[ex.title] if p != ex.context]
        chosen = rng.sample(others, 9) + [ex.context]
        rng.shuffle(chosen)
        passages = [(ex.title, p) for p in chosen]
        layout = LAYOUTS[len(traces) % len(LAYOUTS)]
        content = rag_message(passages, ex.question, layout)
        at = ex.context.find(ex.answers[0])
        start = max(ex.context.rfind(". ", 0, at) + 2, 0) if at >= 0 else 0
        end = ex.context.find(". ", at + len(ex.answers[0])) if at >= 0 else -1
        sentence = ex.context[start:end + 1 if end >= 0 else len(ex.context)].strip()
        answer_bearing = [{"message": 1, "text": sentence, "what": "sentence holding the answer span"}]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        traces.append(_trace(f"rag-squad-{len(traces)}", "rag", f"SQuAD v2 dev {ex.id}", messages, answer_bearing,
                             [ex.question], ex.question))
        if len(traces) == count:
            break
    return traces


# -- JSON tool results ---------------------------------------------------------------------------


def tool_exchange(question: str, tool: str, arguments: dict, result: str, call_id: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(arguments)}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def search_hits(example: HotpotExample, pool: list[HotpotExample], rng: random.Random, count: int = 60) -> tuple[list[dict], list[str]]:
    """Ranked search hits: the example's ten paragraphs among paragraphs of other questions, gold ones mid-list."""
    own = [(p.title, p.text) for p in example.paragraphs]
    gold_titles = {t for t, _ in example.supporting}
    others = [(p.title, p.text) for ex in rng.sample(pool, 12) if ex.id != example.id for p in ex.paragraphs]
    distractors = [x for x in own if x[0] not in gold_titles] + others
    rng.shuffle(distractors)
    ranked = distractors[: count - len(gold_titles)]
    for title, text in [x for x in own if x[0] in gold_titles]:
        ranked.insert(rng.randrange(count // 5, count - count // 5), (title, text))
    hits = []
    for rank, (title, text) in enumerate(ranked[:count], 1):
        hits.append({
            "rank": rank, "id": f"doc-{_slug(title + text)}", "title": title,
            "url": "https://en.wikipedia.org/wiki/" + title.replace(" ", "_"),
            "score": round(24.0 - rank * 0.31, 2), "snippet": text,
        })
    return hits, sorted(gold_titles)


def json_search_traces(examples: list[HotpotExample], pool: list[HotpotExample]) -> list[dict]:
    traces = []
    for n, ex in enumerate(examples):
        rng = random.Random(f"search-{ex.id}")
        hits, gold_titles = search_hits(ex, pool, rng)
        body = {"query": ex.question, "total": len(hits) * 17, "took_ms": rng.randint(8, 90), "hits": hits}
        result = json.dumps(body, indent=2 if n % 2 else None, ensure_ascii=False)
        answer_bearing = []
        for hit in hits:
            if hit["title"] in gold_titles:
                answer_bearing += [
                    {"message": 3, "text": hit["url"], "what": f"url of gold hit {hit['title']}"},
                    {"message": 3, "text": hit["id"], "what": f"id of gold hit {hit['title']}"},
                ]
        by_title = {p.title: p for p in ex.paragraphs}
        for title, sent in ex.supporting:
            p = by_title.get(title)
            if p is not None and sent < len(p.sentences) and p.sentences[sent].strip():
                answer_bearing.append({"message": 3, "text": p.sentences[sent].strip(), "what": f"supporting {title}#{sent}"})
        messages = tool_exchange(ex.question, "search", {"query": ex.question}, result, f"call_{_slug(ex.id)}")
        traces.append(_trace(f"json-search-{n}", "json", f"HotpotQA dev distractor {ex.id} + other questions' paragraphs",
                             messages, answer_bearing, [ex.question], ex.question))
    return traces


def module_record(rel: str, text: str) -> dict | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    functions, classes = [], []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = (ast.get_docstring(node) or "").strip().split("\n")[0]
            functions.append({"name": node.name, "line": node.lineno, "args": [a.arg for a in node.args.args], "doc": doc})
        elif isinstance(node, ast.ClassDef):
            methods = [b.name for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))]
            classes.append({"name": node.name, "line": node.lineno, "methods": methods})
    module_doc = (ast.get_docstring(tree) or "").strip().split("\n")[0]
    return {"module": rel[:-3].replace("/", "."), "path": rel, "lines": text.count("\n") + 1, "doc": module_doc,
            "classes": classes, "functions": functions}


def json_listing_traces(count: int) -> list[dict]:
    """GET /api/modules: the standard library's modules with their classes and functions (nested arrays)."""
    records = [r for m in load_stdlib_modules("eval", min_lines=80) if (r := module_record(m.path, m.text))]
    traces = []
    for n in range(count):
        rng = random.Random(f"listing-{n}")
        page = rng.sample(records, 20)
        page.sort(key=lambda r: r["path"])
        candidates = [(r, f) for r in page[5:-5] for f in r["functions"] if f["doc"] and len(f["name"]) > 6]
        record, target = candidates[rng.randrange(len(candidates))]
        question = f"Which module defines the function `{target['name']}`, at which line, and what does it do?"
        body = {"object": "list", "data": page, "page": n + 1, "has_more": True,
                "interpreter": f"CPython {sys.version_info.major}.{sys.version_info.minor}"}
        result = json.dumps(body, indent=2 if n % 2 == 0 else None)
        answer_bearing = [
            {"message": 3, "text": record["path"], "what": "path of the module that defines the function"},
            {"message": 3, "text": target["doc"], "what": "the function's docstring line"},
        ]
        messages = tool_exchange(question, "list_modules", {"page": n + 1}, result, f"call_list{n}")
        traces.append(_trace(f"json-listing-{n}", "json", f"Python {sys.version.split()[0]} standard library (eval split)",
                             messages, answer_bearing, [question], question))
    return traces


def json_rows_traces(count: int) -> list[dict]:
    """SELECT * FROM questions: SQuAD questions as database rows; the question asks about one row by id."""
    rows_all = [ex for ex in load_squad("eval") if not ex.is_impossible]
    traces = []
    for n in range(count):
        rng = random.Random(f"rows-{n}")
        start = rng.randrange(0, len(rows_all) - 80)
        rows = [{"id": ex.id, "article": ex.title, "question": ex.question, "answers": ex.answers,
                 "answerable": not ex.is_impossible} for ex in rows_all[start:start + 80]]
        target = rows[rng.randrange(15, 65)]
        question = f"What answers are stored for question {target['id']} and what was asked?"
        body = {"rows": rows, "row_count": len(rows), "query": "SELECT * FROM questions LIMIT 80 OFFSET " + str(start)}
        result = json.dumps(body, indent=2 if n % 2 else None, ensure_ascii=False)
        answer_bearing = [{"message": 3, "text": target["question"], "what": "the asked row's question"}]
        answer_bearing += [{"message": 3, "text": a, "what": "an answer of the asked row"} for a in target["answers"]]
        messages = tool_exchange(question, "sql", {"query": body["query"]}, result, f"call_sql{n}")
        traces.append(_trace(f"json-rows-{n}", "json", "SQuAD v2 dev (eval split) as rows", messages, answer_bearing,
                             [question], question))
    return traces


# -- logs ----------------------------------------------------------------------------------------


def stdlib_frames(rng: random.Random, depth: int) -> list[tuple[str, int, str, str]]:
    """(path, line, function, source line) of real functions in the standard library."""
    root = Path(sysconfig.get_paths()["stdlib"])
    modules = [m for m in load_stdlib_modules("eval", min_lines=200)]
    frames = []
    while len(frames) < depth:
        module = modules[rng.randrange(len(modules))]
        try:
            tree = ast.parse(module.text)
        except SyntaxError:
            continue
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and len(n.body) > 2]
        if not functions:
            continue
        fn = functions[rng.randrange(len(functions))]
        stmt = fn.body[rng.randrange(1, len(fn.body))]
        line = module.text.split("\n")[stmt.lineno - 1].strip()
        frames.append((str(root / module.path), stmt.lineno, fn.name, line))
    return frames


def app_log(rng: random.Random, lines: int) -> tuple[str, list[str], str]:
    endpoints = sorted({r.path[:-3].replace("/", "_") for r in load_stdlib_modules("eval", min_lines=300)})[:40]
    out, clock = [], 36000.0
    fail_at = rng.randrange(lines // 3, lines * 2 // 3)
    answer = []
    for n in range(lines):
        clock += rng.random() * 1.7
        stamp = f"2026-03-14T{int(clock // 3600):02d}:{int(clock % 3600 // 60):02d}:{clock % 60:06.3f}Z"
        roll = rng.random()
        if n == fail_at:
            frames = stdlib_frames(rng, 4)
            err = f"{stamp} ERROR [worker-{rng.randrange(8)}] request {_slug(str(n))} failed: ValueError: invalid literal for int() with base 10: 'N/A'"
            out.append(err)
            out.append("Traceback (most recent call last):")
            for path, line, fn, src in frames:
                out.append(f'  File "{path}", line {line}, in {fn}')
                out.append(f"    {src}")
            last = "ValueError: invalid literal for int() with base 10: 'N/A'"
            out.append(last)
            answer = [err, f'  File "{frames[-1][0]}", line {frames[-1][1]}, in {frames[-1][2]}', last]
        elif roll < 0.62:
            ep = endpoints[rng.randrange(len(endpoints))]
            out.append(f"{stamp} INFO [worker-{rng.randrange(8)}] GET /api/{ep} 200 {rng.randrange(3, 90)}ms")
        elif roll < 0.85:
            out.append(f"{stamp} DEBUG [scheduler] heartbeat ok queue={rng.randrange(0, 40)} inflight={rng.randrange(0, 9)}")
        elif roll < 0.95:
            out.append(f"{stamp} INFO [cache] hit ratio {rng.random():.3f} over last 1000 lookups")
        else:
            out.append(f"{stamp} WARN [db] slow query {rng.randrange(250, 900)}ms on table events")
    return "\n".join(out), answer, "Why did the failing request fail, and in which function?"


def test_log(rng: random.Random, tests: int) -> tuple[str, list[str], str]:
    records = [r for m in load_stdlib_modules("eval", min_lines=150) if (r := module_record(m.path, m.text))]
    names = [(r["module"].replace(".", "_"), f["name"]) for r in records for f in r["functions"] if not f["name"].startswith("_")]
    rng.shuffle(names)
    names = names[:tests]
    fail = rng.randrange(tests // 4, tests * 3 // 4)
    out = ["============================= test session starts ==============================",
           "platform linux -- Python 3.11.7, pytest-8.3.2, pluggy-1.5.0", f"collected {tests} items", ""]
    answer = []
    for n, (module, fn) in enumerate(names):
        status = "FAILED" if n == fail else ("SKIPPED" if rng.random() < 0.04 else "PASSED")
        line = f"tests/test_{module}.py::test_{fn} {status} [{(n + 1) * 100 // tests:3d}%]"
        out.append(line)
        if n == fail:
            answer.append(line)
            failing = (module, fn)
    expected, got = rng.randrange(10, 99), rng.randrange(100, 999)
    assertion = f"E       assert {got} == {expected}"
    out += ["", "=================================== FAILURES ===================================",
            f"_________________________ test_{failing[1]} _________________________", "",
            f"    def test_{failing[1]}():", f"        result = {failing[1]}(SAMPLE)",
            f">       assert result == {expected}", assertion, "",
            f"tests/test_{failing[0]}.py:{rng.randrange(20, 300)}: AssertionError",
            f"========= 1 failed, {tests - 1} passed in {rng.random() * 30:.2f}s ========="]
    answer.append(assertion)
    return "\n".join(out), answer, "Which test failed, and what was the assertion?"


def log_traces() -> list[dict]:
    traces = []
    for n, (maker, size) in enumerate([(app_log, 260), (app_log, 420), (test_log, 220), (test_log, 380)]):
        rng = random.Random(f"log-{n}")
        text, answer, question = maker(rng, size)
        messages = tool_exchange(question, "run_command", {"command": "tail -n 500 app.log" if maker is app_log else "pytest -q"},
                                 text, f"call_log{n}")
        answer_bearing = [{"message": 3, "text": a, "what": "line that explains the failure"} for a in answer]
        traces.append(_trace(f"logs-{maker.__name__}-{n}", "logs", f"seeded log built from Python {sys.version.split()[0]} stdlib names",
                             messages, answer_bearing, [question], question))
    return traces


# -- a 20-turn agent session ----------------------------------------------------------------------


def agent_trace(example: HotpotExample, pool: list[HotpotExample], n: int) -> dict:
    """20 requests: the agent searches, opens pages, lists and reads files, runs commands; each request
    resends the whole conversation so far, as agents do."""
    rng = random.Random(f"agent-{example.id}")
    messages: list[dict] = [{"role": "system", "content": SYSTEM + " Use the tools; cite the pages you used."},
                            {"role": "user", "content": example.question}]
    turns: list[int] = []
    answer_bearing: list[dict] = []
    modules = load_stdlib_modules("eval", min_lines=120)
    by_title = {p.title: p for p in example.paragraphs}
    gold_titles = sorted({t for t, _ in example.supporting})
    plan = ["search", "open_page", "list_files", "read_file", "run_command"] * 4
    for turn, tool in enumerate(plan):
        call_id = f"call_{n}_{turn}"
        if tool == "search":
            hits, _ = search_hits(example, pool, rng, count=25)
            args, result = {"query": example.question}, json.dumps({"hits": hits}, ensure_ascii=False)
        elif tool == "open_page":
            title = gold_titles[turn // 5 % len(gold_titles)] if turn // 5 < 2 else example.paragraphs[turn % 10].title
            page = by_title[title]
            args, result = {"title": title}, f"# {title}\n\n{page.text}"
        elif tool == "list_files":
            pick = rng.sample(modules, 25)
            args = {"path": "Lib/"}
            result = json.dumps([{"path": m.path, "bytes": len(m.text.encode()), "lines": m.text.count("\n")} for m in pick], indent=1)
        elif tool == "read_file":
            module = modules[rng.randrange(len(modules))]
            args, result = {"path": module.path}, "\n".join(module.text.split("\n")[:100])
        else:
            text, _, _ = (app_log if turn % 2 else test_log)(rng, 80)
            args, result = {"command": "make check"}, text
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
        if tool == "open_page" and turn < 10:
            for title, sent in example.supporting:
                p = by_title.get(title)
                if title == args["title"] and sent < len(p.sentences) and p.sentences[sent].strip():
                    answer_bearing.append({"message": len(messages) - 1, "text": p.sentences[sent].strip(),
                                           "what": f"supporting {title}#{sent} in an opened page"})
        if turn % 5 == 4:
            messages.append({"role": "assistant", "content": f"Checked {tool.replace('_', ' ')} output; continuing with the sources found so far."})
            messages.append({"role": "user", "content": "Go on. Keep the citations." if turn < 19 else example.question})
        turns.append(len(messages))
    return _trace(f"agent-session-{n}", "agent", f"HotpotQA dev distractor {example.id}; stdlib files and seeded logs",
                  messages, answer_bearing, [example.question], example.question, turns=turns, tools=AGENT_TOOLS)


def build() -> dict[str, dict]:
    hotpot = load_hotpotqa("eval", limit=400)
    rag_examples, search_examples, agent_examples, pool = hotpot[:6], hotpot[6:10], hotpot[10:12], hotpot[100:400]
    traces = [hotpot_rag(ex, LAYOUTS[n % len(LAYOUTS)], n) for n, ex in enumerate(rag_examples)]
    traces += squad_rags(6)
    traces += json_search_traces(search_examples, pool)
    traces += json_listing_traces(4)
    traces += json_rows_traces(4)
    traces += log_traces()
    traces += [agent_trace(ex, pool, n) for n, ex in enumerate(agent_examples)]
    return {t["name"]: t for t in traces}


def serialise(trace: dict) -> str:
    return json.dumps(trace, ensure_ascii=False, indent=1) + "\n"


def load_traces(kind: str | None = None) -> list[dict]:
    traces = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(OUT.glob("*.json"))]
    return [t for t in traces if kind is None or t["kind"] == kind]


def request_body(trace: dict, turn: int = -1) -> dict:
    """The chat completion request the app sends at `turn` (default: the last)."""
    body = {"model": trace["model"], "messages": trace["messages"][: trace["turns"][turn]]}
    if trace.get("tools"):
        body["tools"] = trace["tools"]
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare a rebuild with the committed files")
    args = parser.parse_args()
    traces = build()
    OUT.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, trace in traces.items():
        path = OUT / f"{name}.json"
        text = serialise(trace)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    print(f"{len(traces)} traces, {len(changed)} {'differ' if args.check else 'written'}: {', '.join(changed) or '-'}")
    if args.check and changed:
        sys.exit(1)


if __name__ == "__main__":
    main()
