#!/usr/bin/env python3
"""The import graph between the files of the workspace's crates.

    scripts/modgraph.py [-v] [--tests] [CRATE_SRC ...]

Reads every `.rs` file under each crate's `src/`, takes its `use crate::…`,
`use super::…` and inline `crate::…` paths, resolves each to the file that
defines the module (following `pub use` re-exports of a module's root), and
prints per crate the number of files and edges, the import circles (strongly
connected components of more than one file) and the largest functions.
`#[cfg(test)]` modules are left out unless `--tests` is given. With `-v` it
lists the edges of each circle; with `--groups`, the imports between
top-level modules. The exit status is 1 when a circle exists.
"""

import os
import re
import sys
from collections import defaultdict

CRATES = ["engine/src", "sql/src", "connectors/src", "udfs/src"]


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return "::".join(rel)


def strip(text, tests):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    if not tests:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
        if m:
            text = text[: m.start()]
    return text


def expand_use(body):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    body = re.sub(r"\s+", " ", body)
    body = re.sub(r"\s*([{},]|::)\s*", r"\1", body).strip()
    out = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0 and part.endswith("}"):
                walk(prefix + part[:brace], part[brace + 1 : -1])
            else:
                out.append(prefix + part.split(" as ")[0].strip())

    walk("", body)
    return out


def resolve(path, module, modules):
    """The module a path names, from a file of module `module`."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = module.split("::") if module else []
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    else:
        # A path relative to the file's own module: `use child::Item`.
        base = module.split("::") if module else []
        if "::".join(base + segs[:1]) not in modules:
            return None
    full = base + segs
    for n in range(len(full), -1, -1):
        candidate = "::".join(full[:n])
        if candidate in modules:
            return candidate, full[n:]
    return None


def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    tests = "--tests" in args
    roots = [a for a in args if not a.startswith("-")] or CRATES
    any_cycle = False
    for root in roots:
        files = {}
        for dirpath, _, names in os.walk(root):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    files[module_of(root, path)] = path
        texts = {m: strip(open(p).read(), tests) for m, p in files.items()}
        modules = set(files)
        # `pub use child::Item` in a module's file: Item lives in the child.
        reexports = {}
        for m, text in texts.items():
            for body in re.findall(r"pub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
                for p in expand_use(body):
                    r = resolve(p, m, modules)
                    if r and r[0] != m:
                        reexports[(m, p.split("::")[-1])] = r[0]
        edges = defaultdict(set)
        for m, text in texts.items():
            paths = []
            for body in re.findall(r"\buse\s+([^;]+);", text):
                paths += expand_use(body)
            paths += re.findall(r"(?<![\w:])(?:crate|super)(?:::\w+)+", text)
            # Inline paths through a child module: `child::item(…)`.
            paths += re.findall(r"(?<![\w:])\w+(?:::\w+)+", text)
            for p in paths:
                r = resolve(p, m, modules)
                if r is None:
                    continue
                target, rest = r
                if rest and (target, rest[0]) in reexports:
                    target = reexports[(target, rest[0])]
                # A child naming an item of its parent is an import; a
                # `mod child;` declaration is not.
                if target != m:
                    edges[m].add(target)
        report(root, files, edges, texts, verbose)
        any_cycle |= bool(cycles(files, edges))
    sys.exit(1 if any_cycle else 0)


def cycles(files, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(files):
        if v not in index:
            strong(v)
    return out


def largest_functions(texts, n=3):
    found = []
    for m, text in texts.items():
        lines = text.split("\n")
        for i, line in enumerate(lines):
            f = re.match(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?fn\s+(\w+)", line)
            if not f:
                continue
            depth, started = 0, False
            for j in range(i, len(lines)):
                depth += lines[j].count("{") - lines[j].count("}")
                started |= "{" in lines[j]
                if ";" in lines[j] and not started:
                    break
                if started and depth <= 0:
                    found.append((j - i + 1, f"{m or 'crate'}::{f.group(4)}"))
                    break
    return sorted(found, reverse=True)[:n]


def report(root, files, edges, texts, verbose):
    count = sum(len(v) for v in edges.values())
    comps = cycles(files, edges)
    print(f"{root}: {len(files)} files, {count} imports, {len(comps)} circle(s)")
    for comp in comps:
        print(f"  circle of {len(comp)}: {', '.join(c or 'crate' for c in comp)}")
        if verbose:
            members = set(comp)
            for a in comp:
                for b in sorted(edges.get(a, ())):
                    if b in members:
                        print(f"    {a or 'crate'} -> {b or 'crate'}")
    if "--groups" in sys.argv:
        groups = defaultdict(set)
        for a, targets in edges.items():
            for b in targets:
                ga, gb = a.split("::")[0] or "crate", b.split("::")[0] or "crate"
                if ga != gb:
                    groups[ga].add(gb)
        for g in sorted(groups):
            print(f"  {g} -> {', '.join(sorted(groups[g]))}")
    tops = ", ".join(f"{name} {size}" for size, name in largest_functions(texts))
    print(f"  largest functions (lines): {tops}")


if __name__ == "__main__":
    main()
