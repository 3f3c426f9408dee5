#!/usr/bin/env python3
"""test_docs.py — the user docs still match the tree.

test_links: every relative link in README.md and docs/**/*.md ([text](path), [text](path#anchor),
[text](#anchor), images) resolves to a file in the repository, and its anchor to a heading (GitHub's
slugs) or an explicit <a id/name> of that file; a docs/*.md path or a DESIGN section named in the
text (outside code blocks) must exist too: the design document is not part of the repository.

test_shell_examples: every fenced ```sh / ```console block in README.md and docs/ runs against a
live simulated vigild and exits 0 (PATH has the built vigil and vigild; VIGIL_HOST points at the
daemon, whose address also stands in for 127.0.0.1:5555, localhost:5555 and NODE:5555; the working
directory is a scratch copy of the tree's layout: the source directories linked, build/ the build),
unless the block is preceded by a marker saying why it cannot run here:

    <!-- no-test: needs a GPU -->

(reasons: a GPU, systemd, Kubernetes, root, a remote host, a placeholder the reader fills in, ...).
A ```console block runs its `$ ` lines only (the rest is output). Each block runs in a scratch
directory with `set -e -o pipefail`, so one failing command fails the block.
"""
import glob
import os
import re
import subprocess
import sys

from harness import BUILD, SRC, Vigild, check, main, scratch_dir, wait_for

DOCS = [os.path.join(SRC, "README.md")] + sorted(
    glob.glob(os.path.join(SRC, "docs", "**", "*.md"), recursive=True))
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)")
NO_TEST = re.compile(r"<!--\s*no-test:\s*(.+?)\s*-->")
DOC_PATH = re.compile(r"(?<![\w/.-])((?:docs/)[\w./-]+\.md)\b")
DESIGN = re.compile(r"\bDESIGN(?:\.md)?\s*§")


def rel(path):
    return os.path.relpath(path, SRC)


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks, inline code removed."""
    out, fence = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                if fence is None:
                    fence = m.group(2)[0] * 3
                elif m.group(2).startswith(fence):
                    fence = None
                continue
            if fence is None:
                out.append((n, line))
    return out


def slug(heading):
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    h = re.sub(r"<[^>]+>", "", heading.strip())
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)          # links keep their text
    h = h.replace("`", "").lower()
    h = re.sub(r"[^\w\- ]", "", h, flags=re.UNICODE)
    return h.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen, out = {}, set()
        for _, line in prose_lines(path):
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(2))
                k = seen.get(s, 0)
                seen[s] = k + 1
                out.add(s if k == 0 else "%s-%d" % (s, k))
            for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
                out.add(a)
        _anchors[path] = out
    return _anchors[path]


def broken_links(path, root=SRC):
    errs = []
    for n, line in prose_lines(path):
        text = re.sub(r"`[^`]*`", "", line)
        targets = LINK.findall(text) + REF_DEF.findall(text)
        for t in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", t):       # http:, https:, mailto:
                continue
            file_part, _, anchor = t.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = "%s:%d: %s" % (rel(path), n, t)
            if not dest.startswith(root + os.sep) and dest != root:
                errs.append(where + " (points outside the repository)")
            elif not os.path.exists(dest):
                errs.append(where + " (no such file)")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                errs.append(where + " (no heading '#%s' in %s)" % (anchor, rel(dest)))
        for p in DOC_PATH.findall(line):                   # a docs/*.md path named in the text
            if not os.path.exists(os.path.join(root, p)) and \
                    not os.path.exists(os.path.join(os.path.dirname(path), p)):
                errs.append("%s:%d: %s (named in the text; no such file)" % (rel(path), n, p))
        if DESIGN.search(text):
            errs.append("%s:%d: refers to a DESIGN section, which is not in the repository"
                        % (rel(path), n))
    return errs


def test_links():
    errs = []
    for p in DOCS:
        errs += broken_links(p)
    check(not errs, "%d broken references in the docs:\n  %s" % (len(errs), "\n  ".join(errs)))
    # every user doc is reachable from the README's table
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    unlisted = [rel(p) for p in glob.glob(os.path.join(SRC, "docs", "*.md"))
                if "(%s)" % rel(p) not in readme]
    check(not unlisted, "docs not linked from README.md: %s" % unlisted)
    # the checker itself: a missing file and a missing anchor are found; a good anchor, a link
    # in inline code and one in a code block are not
    tmp = scratch_dir("vigil-docs-")
    with open(os.path.join(tmp.name, "y.md"), "w") as f:
        f.write("# Title\n\n## The seed's `config` (v2)\n")
    x = os.path.join(tmp.name, "x.md")
    with open(x, "w") as f:
        f.write("[a](nope.md) [b](y.md#no-such) [c](y.md#the-seeds-config-v2) `[d](nope2.md)`\n"
                "```sh\n[e](nope3.md)\n```\n")
    got = broken_links(x, root=tmp.name)
    tmp.cleanup()
    check(len(got) == 2 and "nope.md" in got[0] and "no-such" in got[1],
          "link checker self-test: %s" % got)


# ---------------------------------------------------------------- shell examples

def blocks(path):
    """(line, lang, code, no_test reason or None) of the ```sh / ```console blocks of path."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    i, pending = 0, None
    while i < len(lines):
        line = lines[i]
        m = NO_TEST.search(line)
        if m:
            pending = (i, m.group(1))
        f = FENCE.match(line)
        if f:
            fence, lang, start = f.group(2), f.group(3), i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            if lang in ("sh", "console"):
                reason = pending[1] if pending and start - pending[0] <= 2 else None
                out.append((start + 1, lang, body, reason))
            pending = None
        i += 1
    return out


def commands(lang, body):
    if lang == "sh":
        return "".join(body)
    cmds, cont = [], False
    for line in body:
        s = line.rstrip("\n")
        if cont:
            cmds.append(s)
            cont = s.endswith("\\")
        elif s.startswith("$ "):
            cmds.append(s[2:])
            cont = s.endswith("\\")
    return "\n".join(cmds) + "\n"


def run_example(script, env, addr):
    """Run one block with bash (set -e -o pipefail) in a scratch copy of the tree's layout: the
    daemon's address replaces the documented ones. (exit status, last output)."""
    for placeholder in ("127.0.0.1:5555", "localhost:5555", "NODE:5555"):
        script = script.replace(placeholder, addr)
    work = scratch_dir("vigil-doc-example-")
    try:
        for name in os.listdir(SRC):
            if name not in ("build", ".git") and not name.startswith("build-"):
                os.symlink(os.path.join(SRC, name), os.path.join(work.name, name))
        os.symlink(BUILD, os.path.join(work.name, "build"))
        p = subprocess.run(["bash", "-c", "set -e -o pipefail\n" + script], cwd=work.name,
                           env=env, capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout[-1500:] + p.stderr[-1500:]
    finally:
        work.cleanup()


def test_shell_examples():
    all_blocks = [(p, b) for p in DOCS for b in blocks(p)]
    runnable = [(p, b) for p, b in all_blocks if b[3] is None]
    check(runnable, "no runnable shell examples found")
    # the placeholder a reader replaces, in examples that can run, is the simulated daemon
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 15, "ready")
        addr = v.url.split("://", 1)[1]
        env = dict(os.environ)
        env.update({
            "PATH": os.path.join(BUILD, "bin") + os.pathsep + env.get("PATH", ""),
            "VIGIL_HOST": v.url, "VIGIL_SOCKET": v.sock, "VIGIL_URL": v.url, "VIGIL_ADDR": addr,
            "VIGIL_SOURCE_DIR": SRC, "VIGIL_BUILD_DIR": BUILD,
        })
        failures = []
        # the runner itself: a failing command in the middle of a block fails it, a console
        # block runs only its "$ " lines, and a marker two lines above a fence skips it
        check(run_example("true\nfalse\ntrue\n", env, addr)[0] != 0, "a failing line passed")
        check(commands("console", ["$ vigil status\n", "Version: 1\n", "$ true \\\n", "  x\n"])
              == "vigil status\ntrue \\\n  x\n", "console commands")
        check(run_example(commands("console", ["$ vigil status\n", "Version: 1\n"]), env,
                          addr)[0] == 0, "vigil status against the daemon")
        tmp = scratch_dir("vigil-docs-")
        probe = os.path.join(tmp.name, "p.md")
        with open(probe, "w") as f:
            f.write("<!-- no-test: needs a GPU -->\n```sh\nvigild\n```\n\n```console\n$ vigil status\n```\n"
                    "```yaml\na: 1\n```\n")
        got = [(b[1], b[3]) for b in blocks(probe)]
        tmp.cleanup()
        check(got == [("sh", "needs a GPU"), ("console", None)], "blocks: %s" % got)
        for path, (line, lang, body, _) in runnable:
            script = commands(lang, body)
            try:
                rc, out = run_example(script, env, addr)
                if rc != 0:
                    failures.append("%s:%d (exit %d):\n%s\n--- output ---\n%s" % (
                        rel(path), line, rc, script, out))
            except subprocess.TimeoutExpired:
                failures.append("%s:%d: timed out after 30 s:\n%s" % (rel(path), line, script))
        v.check_alive()
    check(not failures, "%d of %d shell examples failed (mark one that cannot run here with "
          "<!-- no-test: REASON -->):\n\n%s" % (len(failures), len(runnable), "\n\n".join(failures)))
    sys.stderr.write("%d shell examples ran, %d marked no-test\n"
                     % (len(runnable), len(all_blocks) - len(runnable)))


if __name__ == "__main__":
    main([test_links, test_shell_examples])
