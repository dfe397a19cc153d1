#!/usr/bin/env python3
"""Rewrites references to the old, out-of-tree design document into pointers into docs/.

Comments in the code used to say `SPEC §5`, `SPEC §3 "Addresses"`, `SPEC §5, §11` or just `(§3)`;
that document is not part of the repository. This script replaces each such reference with the
matching heading of docs/architecture.md (or docs/dns-wire.md), e.g. `docs/architecture.md#dns`.
Section signs that cite another document (`RFC 1035 §4.1.4`, `proxy-protocol.txt §2.2`) become
the word "section", so that `grep -rn 'SPEC\\b\\|§' src native/src` finds nothing afterwards.

Idempotent: rewritten text holds neither `SPEC` nor `§`, so a second run changes nothing.
Identifiers such as UNSPECIFIED or RESPECT are left alone (SPEC must stand as a word of its own).

Usage: python3 docs/spec-refs.py [--check] [PATH ...]   (default paths: src native/src)
  --check   change nothing; list what would change and exit 1 if anything would.
"""

import os
import re
import sys

ARCH = 'docs/architecture.md'
WIRE = 'docs/dns-wire.md'

# Old section number -> anchor of docs/architecture.md.
SECTIONS = {
    '1': 'overview',
    '2': 'overview',
    '3': 'dns',
    '4': 'podman',
    '5': 'registry-and-gossip',
    '6': 'health',
    '7': 'load-balancer',
    '8': 'http-api',
    '9': 'systemd',
    '10': 'native-addon',
    '11': 'configuration',
    '12': 'overview',
    '13': 'overview',
    '14': 'overview',
    '15': 'bounds-and-performance',
    '16': 'failure-model',
}

# (section, subsection as written after the number, lower case) -> full target.
SUBSECTIONS = {
    ('3', 'addresses'): ARCH + '#addresses',
    ('3', 'where it listens'): ARCH + '#where-it-listens',
    ('3', 'how containers use it'): ARCH + '#container-names',
    ('3', 'table'): ARCH + '#names',
    ('3', 'wire'): WIRE,
    ('3', 'truncation'): WIRE + '#truncation',
    ('3', 'rotation'): WIRE + '#rotation',
    ('4', 'labels'): ARCH + '#labels',
    ('5', 'versioned wire format'): ARCH + '#gossip-wire-format',
    ('5', 'persistence'): ARCH + '#state-snapshot',
    ('5', 'stale'): ARCH + '#state-snapshot',
    ('5', 'join'): ARCH + '#joining',
    ('9', 'reload'): ARCH + '#reload',
}

EXTS = ('.ts', '.mts', '.js', '.mjs', '.rs')

# A subsection after the number: a quoted title, or one of the bare words used in comments.
SUB = r'(?:\s+(?:"(?P<q>[^"\n]+)"|(?P<w>table|labels)\b))?'
# `SPEC §5`, `SPEC §5 "Join"`, `SPEC §5, §11`, `SPEC §4 and §6`; `SPEC` as a word of its own.
SPEC_REF = re.compile(r'(?<![\w])SPEC\s*§\s*(?P<n>\d+)' + SUB +
                      r'(?P<more>(?:\s*(?:,|and)\s*§\s*\d+(?:\s+"[^"\n]+")?)*)')
MORE = re.compile(r'§\s*(?P<n>\d+)(?:\s+"(?P<q>[^"\n]+)")?')
# `SPEC` with no section: `the SPEC defaults`.
SPEC_DEFAULTS = re.compile(r'\bthe SPEC defaults\b')
SPEC_WORD = re.compile(r'(?<![\w])SPEC(?![\w])')
# A section sign that cites another document: `RFC 1035 §4.1.4`, `RFC\n//   2181 §9`, `x.txt §2.2`.
FOREIGN = re.compile(r'(?P<doc>(?:RFC\s*)?\b\d{3,5}|\.txt|\.md|\.go|\.html?)\s+§\s*(?=\d)')
# A bare project reference left over: `(§3)`, `§4 labels`.
BARE_REF = re.compile(r'§\s*(?P<n>\d+)' + SUB)


def target(n, sub):
    if sub:
        hit = SUBSECTIONS.get((n, sub.strip().lower()))
        if hit:
            return hit
    anchor = SECTIONS.get(n)
    if anchor is None:
        raise ValueError(f'§{n} has no place in docs/; add it to SECTIONS in {__file__}')
    return f'{ARCH}#{anchor}'


def one(n, q, w):
    t = target(n, q or w)
    # A quoted subsection with no heading of its own stays readable next to its section.
    if q and (n, q.strip().lower()) not in SUBSECTIONS:
        return f'{t} "{q}"'
    return t


def rewrite(text):
    def spec(m):
        parts = [one(m['n'], m['q'], m['w'])]
        for x in MORE.finditer(m['more'] or ''):
            parts.append(one(x['n'], x['q'], None))
        seen = []
        for p in parts:
            if p not in seen:
                seen.append(p)
        return ', '.join(seen)

    text = SPEC_REF.sub(spec, text)
    text = SPEC_DEFAULTS.sub(f'the documented defaults ({ARCH}#configuration)', text)
    text = SPEC_WORD.sub(ARCH, text)
    text = FOREIGN.sub(lambda m: m['doc'] + ' section ', text)
    text = BARE_REF.sub(lambda m: one(m['n'], None, m['w']), text)
    return text


def files(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if d not in ('node_modules', 'target', 'dist'))
            for name in sorted(names):
                if name.endswith(EXTS):
                    yield os.path.join(root, name)


def main(argv):
    check = '--check' in argv
    paths = [a for a in argv if a != '--check'] or ['src', 'native/src']
    changed = 0
    for path in files(paths):
        with open(path, encoding='utf-8') as f:
            old = f.read()
        new = rewrite(old)
        if new == old:
            continue
        changed += 1
        for a, b in zip(old.splitlines(), new.splitlines()):
            if a != b:
                print(f'{path}:\n  - {a.strip()}\n  + {b.strip()}')
        if not check:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(new)
    print(f'{changed} file(s) {"would change" if check else "changed"}', file=sys.stderr)
    return 1 if check and changed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
