#!/usr/bin/env python3
"""Generates the jshost command's help and its man page from docs/cli.md.

    cli-doc.py --header OUT.h docs/cli.md      jshost help, COMMAND --help (C)
    cli-doc.py --man OUT.1 --version V docs/cli.md   jshost(1)

docs/cli.md is the one source: the C help text and the man page are both
rendered from it at build time, so they cannot drift apart. It is written in
a small Markdown: `#` the title ("jshost — what it does"), `##` sections,
`###` one per command under "Commands" (heading = usage line, first
paragraph = the summary `jshost help` shows), paragraphs, `-` lists (an item
`- `TERM`: text` is an option or a value, shown as a term and its text), and
fenced code blocks.
"""

import argparse
import re
import sys
import textwrap

WIDTH = 78
# Sections `jshost help` shows (the man page shows them all).
HELP_SECTIONS = ("Description", "Commands", "Exit status", "Environment")


class Doc:
    def __init__(self):
        self.title = ""
        self.sections = []  # (name, blocks)
        self.commands = []  # (name, usage, blocks)


def fail(msg):
    sys.exit("cli-doc: docs/cli.md: " + msg)


def parse_blocks(lines):
    """Paragraphs, list items and code blocks of a section's lines."""
    blocks, para, i = [], [], 0

    def flush():
        if para:
            blocks.append(("p", " ".join(s.strip() for s in para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            if i == len(lines):
                fail("a code block is not closed")
            blocks.append(("code", code))
        elif line.startswith("- "):
            flush()
            item = [line[2:]]
            while i + 1 < len(lines) and lines[i + 1].startswith("  ") and lines[i + 1].strip():
                i += 1
                item.append(lines[i])
            text = " ".join(s.strip() for s in item)
            m = re.match(r"^((?:`[^`]+`(?:, )?)+): (.*)$", text)
            if m:
                terms = re.findall(r"`([^`]+)`", m.group(1))
                blocks.append(("term", ", ".join(terms), m.group(2)))
            else:
                blocks.append(("li", text))
        elif not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return blocks


def parse(text):
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    doc = Doc()
    section, command, body = None, None, []

    def close():
        blocks = parse_blocks(body)
        if command is not None:
            if not blocks or blocks[0][0] != "p":
                fail("command '%s' has no summary paragraph" % command[0])
            doc.commands.append((command[0], command[1], blocks))
        elif section is not None:
            doc.sections.append((section, blocks))
        body.clear()

    for line in text.splitlines():
        if line.startswith("# "):
            doc.title = line[2:].strip()
        elif line.startswith("## "):
            close()
            section, command = line[3:].strip(), None
        elif line.startswith("### "):
            close()
            if section != "Commands":
                fail("'###' outside the Commands section: " + line)
            usage = line[4:].strip()
            m = re.match(r"^jshost ([a-z]+)\b", usage)
            if not m:
                fail("a command heading must read 'jshost NAME ...': " + line)
            command = (m.group(1), usage[len("jshost "):])
        else:
            body.append(line)
    close()
    if " — " not in doc.title:
        fail("the title must read 'jshost — what it does'")
    if not doc.commands:
        fail("no commands")
    names = [c[0] for c in doc.commands]
    if len(set(names)) != len(names):
        fail("a command is described twice")
    return doc


# --- plain text (the C help) -------------------------------------------------

def plain(s):
    # Backquotes stay: they mark what is typed as it is, as in the Markdown.
    return s


def wrap(s, indent, first=None):
    return textwrap.fill(plain(s), WIDTH, initial_indent=first if first is not None else indent,
                         subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False)


def text_blocks(blocks, indent=""):
    out = []
    for b in blocks:
        if b[0] == "p":
            out.append(wrap(b[1], indent))
        elif b[0] == "li":
            out.append(wrap(b[1], indent + "    ", indent + "  - "))
        elif b[0] == "term":
            term = b[1]
            col = indent + "      "
            if len(term) <= 3:
                out.append(wrap(b[2], col, indent + "  %-4s" % term))
            else:
                out.append(indent + "  " + term + "\n" + wrap(b[2], col))
        else:
            out.append("\n".join(indent + "  " + l for l in b[1]))
    return out


def help_text(doc):
    name, what = doc.title.split(" — ", 1)
    parts = ["%s: %s." % (name, what.rstrip("."))]
    for sname, blocks in doc.sections:
        if sname == "Commands":
            lines = ["Commands:"]
            for cname, usage, cblocks in doc.commands:
                lines.append("  jshost " + usage)
                lines.append(wrap(cblocks[0][1], "        "))
            parts.append("\n".join(lines))
        elif sname == "Description":
            parts.extend(text_blocks(blocks))
        elif sname in HELP_SECTIONS:
            parts.append(sname + ":\n" + "\n".join(text_blocks(blocks)))
    return "\n\n".join(parts) + "\n"


def command_text(usage, blocks):
    return "\n\n".join(["usage: jshost " + usage] + text_blocks(blocks)) + "\n"


def c_string(s, indent="    "):
    out = []
    for line in s.splitlines(True):
        esc = "".join(
            "\\\\" if ch == "\\" else '\\"' if ch == '"' else "\\n" if ch == "\n"
            else ch if 32 <= ord(ch) < 127 else "".join("\\%03o" % c for c in ch.encode())
            for ch in line)
        out.append(indent + '"' + esc + '"')
    return "\n".join(out) if out else indent + '""'


def header(doc):
    out = ["/* Generated from docs/cli.md by clients/cli/cli-doc.py: edit that file. */",
           "#ifndef JSHOST_CLI_HELP_H", "#define JSHOST_CLI_HELP_H", "",
           "struct cli_doc {",
           "    const char *name;  /* the command */",
           "    const char *usage; /* its usage line, without \"jshost \" */",
           "    const char *help;  /* what `jshost NAME --help` prints */",
           "};", "",
           "/* What `jshost help` prints. */",
           "static const char cli_help_text[] =",
           c_string(help_text(doc)) + ";", "",
           "static const struct cli_doc cli_docs[] = {"]
    for name, usage, blocks in doc.commands:
        out.append('    {"%s",\n%s,\n%s},' % (name, c_string(usage, "     "),
                                              c_string(command_text(usage, blocks), "     ")))
    out += ["};", "", "#endif", ""]
    return "\n".join(out)


# --- roff (the man page) -----------------------------------------------------

def roff_escape(s):
    s = s.replace("\\", "\\e").replace("—", "\\(em").replace("’", "'")
    return s


def roff_inline(s):
    parts = re.split(r"(`[^`]*`)", s)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + roff_escape(p[1:-1]).replace("-", "\\-") + "\\fR")
        else:
            out.append(roff_escape(p))
    return "".join(out)


def roff_line(s):
    # A line starting with . or ' would be a request.
    return "\\&" + s if s[:1] in (".", "'") else s


def roff_usage(usage):
    """Usage words in CAPS are placeholders (italic); the rest is literal."""
    def word(m):
        w = m.group(0)
        return "\\fI" + w + "\\fR" if re.fullmatch(r"[A-Z][A-Z_]*", w) else w.replace("-", "\\-")
    return re.sub(r"[A-Za-z_-]+", word, roff_escape(usage))


def roff_blocks(blocks):
    out = []
    for b in blocks:
        if b[0] == "p":
            out += [".PP", roff_line(roff_inline(b[1]))]
        elif b[0] == "li":
            out += [".IP \\(bu 2", roff_line(roff_inline(b[1]))]
        elif b[0] == "term":
            out += [".TP", "\\fB" + roff_escape(b[1]).replace("-", "\\-") + "\\fR",
                    roff_line(roff_inline(b[2]))]
        else:
            out += [".PP", ".RS 4", ".nf"]
            out += [roff_line(roff_escape(l).replace("-", "\\-")) for l in b[1]]
            out += [".fi", ".RE"]
    return out


def man(doc, version):
    name, what = doc.title.split(" — ", 1)
    out = ['.\\" Generated from docs/cli.md by clients/cli/cli-doc.py: edit that file.',
           '.TH JSHOST 1 "" "jshost %s" "jshost manual"' % version,
           ".SH NAME", "%s \\- %s" % (name, roff_escape(what))]
    for sname, blocks in doc.sections:
        out.append(".SH " + sname.upper())
        out += roff_blocks(blocks)
        if sname == "Commands":
            for cname, usage, cblocks in doc.commands:
                out += [".SS " + roff_usage("jshost " + usage)]
                out += roff_blocks(cblocks)
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--header", help="write the C help header here")
    ap.add_argument("--man", help="write the man page here")
    ap.add_argument("--version", default="")
    ap.add_argument("source")
    args = ap.parse_args()
    with open(args.source, encoding="utf-8") as f:
        doc = parse(f.read())
    if args.header:
        with open(args.header, "w", encoding="utf-8") as f:
            f.write(header(doc))
    if args.man:
        with open(args.man, "w", encoding="utf-8") as f:
            f.write(man(doc, args.version))


if __name__ == "__main__":
    main()
