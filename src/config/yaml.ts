import { FAILSAFE_SCHEMA, load, Type } from 'js-yaml';
import { LineCounter, parseDocument, type Document } from 'yaml';

// The config file's YAML, read by two libraries with one meaning:
//   - js-yaml reads the value. It builds plain objects and nothing else: with 10,000 services ×
//     5 endpoints in the file (2.6 MB) it takes ~0.2 s and ~50 MB where a `yaml` Document, a
//     node per scalar with its place in the text, takes ~2.3 s and ~250 MB, at start and at every
//     reload, on the event loop.
//   - `yaml` (which keeps every node's place) is used only when there is something to tell:
//     which line a bad value is on, or why a document is not valid YAML. It also reads any
//     document js-yaml refuses, and any with an anchor (`&`): js-yaml has no bound on what aliases
//     make, `yaml` counts them (its maxAliasCount).
// Both resolve plain scalars by the YAML 1.2 core schema. js-yaml's own schemas keep YAML 1.1
// forms (0b1010, 1_000), so the core schema's four tags are written out here with the spec's
// expressions, those `yaml` uses; test/unit/config-yaml.test.ts reads the same scalars with both.

const scalar = (tag: string, test: RegExp, construct: (s: string) => unknown, predicate: (v: unknown) => boolean) =>
  new Type(`tag:yaml.org,2002:${tag}`, { kind: 'scalar', resolve: (s: string | null) => test.test(s ?? ''), construct: (s: string | null) => construct(s ?? ''), predicate });

const CORE = FAILSAFE_SCHEMA.extend({ implicit: [
  scalar('null', /^(?:~|[Nn]ull|NULL)?$/, () => null, (v) => v === null),
  scalar('bool', /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (s) => s[0] === 't' || s[0] === 'T', (v) => typeof v === 'boolean'),
  scalar('int', /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/, (s) => (s[1] === 'o' ? parseInt(s.slice(2), 8) : s[1] === 'x' ? parseInt(s.slice(2), 16) : parseInt(s, 10)), Number.isInteger),
  // As `yaml` splits it: a float's text has a '.' or an exponent (a bare 1 is an int), so that
  // `!!float 1` is refused by both.
  scalar('float', /^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, (s) => {
    if (/nan$/i.test(s)) return NaN;
    if (/inf$/i.test(s)) return s[0] === '-' ? -Infinity : Infinity;
    return parseFloat(s);
  }, (v) => typeof v === 'number'),
] });

export interface YamlFile {
  /** The document as plain values (null for an empty one). */
  value: unknown;
  /** The document with every node's place in the text, made on first use. */
  doc(): { doc: Document; lines: LineCounter };
}

/** Why a document is not valid YAML, and where (1-based). */
export class YamlSyntaxError extends Error {
  constructor(message: string, readonly line: number, readonly col: number) {
    super(message);
  }
}

/** A YAML document's value; throws YamlSyntaxError when it is not valid YAML. */
export function readYaml(text: string): YamlFile {
  let parsed: { doc: Document; lines: LineCounter } | null = null;
  const doc = () => {
    if (!parsed) {
      const lines = new LineCounter();
      parsed = { doc: parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true }), lines };
    }
    return parsed;
  };
  const fast = jsYaml(text);
  if (fast) return { value: fast.value, doc };
  const { doc: d, lines } = doc();
  const err = d.errors[0];
  if (err) {
    const { line, col } = lines.linePos(err.pos[0]);
    throw new YamlSyntaxError(err.message.split('\n')[0]!, line, col);
  }
  return { value: d.toJS() ?? null, doc };
}

/**
 * The document's value as js-yaml reads it, or null when it is left to `yaml`: js-yaml refuses it
 * (told by `yaml`, as every invalid document is, or read by it when it takes it), it has an
 * anchor, or a mapping key the two would spell differently.
 */
export function jsYaml(text: string): { value: unknown } | null {
  if (text.includes('&')) return null;
  let plain = true;
  // Collections that close together (nested ones) ask about the same place once.
  let lookedAt = -1;
  let colon = false;
  const listener = (event: string, state: { input: string; position: number; result: unknown }): void => {
    const r = state.result;
    if (event === 'open' || !plain || (r !== null && typeof r !== 'object')) return;
    if (state.position !== lookedAt) [lookedAt, colon] = [state.position, colonFollows(state.input, state.position)];
    // A null or a collection as a mapping key: js-yaml spells it "null" or joins a list's items
    // with commas, `yaml` spells it "" or as flow YAML.
    if (colon) plain = false;
  };
  try {
    const value = load(text, { schema: CORE, listener });
    return plain ? { value: value ?? null } : null;
  } catch {
    return null;
  }
}

/** Whether a ':' follows `at` (a node that ends there is a mapping key), after blanks, line breaks and comments. */
function colonFollows(text: string, at: number): boolean {
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (c === ':') return true;
    if (c === '#') while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    else if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') return false;
  }
  return false;
}
