import t from 'tap';
import { parseDocument } from 'yaml';
import { jsYaml, readYaml, YamlSyntaxError } from '../../src/config/yaml.js';

// The config file is read by js-yaml with the YAML 1.2 core schema written out in
// src/config/yaml.ts, and by `yaml` when there is an error to place or js-yaml leaves a document
// to it: both must give a document the same meaning.

const viaYaml = (text: string): unknown => parseDocument(text, { uniqueKeys: true }).toJS();
const show = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v));

const SCALARS = [
  '', '~', 'null', 'Null', 'NULL', 'nULL', 'nil',
  'true', 'True', 'TRUE', 'tRUE', 'false', 'False', 'FALSE', 'yes', 'no', 'on', 'off', 'y', 'n', 'Yes',
  '0', '-0', '+0', '7', '12', '+12', '-12', '012', '08', '0o17', '0o18', '0o', '-0o17', '0x1F', '0xff', '0X1F', '0x', '-0x1F', '0b1010', '1_000', '1,000',
  '1.5', '-1.5', '+1.5', '.5', '-.5', '5.', '1e3', '1E-3', '+1.5e+3', '1.e3', '.5e1', '1e', 'e3', '1.2.3',
  '.inf', '-.inf', '+.inf', '.Inf', '.INF', '.iNF', '.nan', '.NaN', '.NAN', '-.nan', 'nan', 'inf', 'Infinity',
  '1:30', '12:30:45', '190:20:30', '2024-01-01', '2001-12-14t21:59:43.10-05:00', '2001-12-14 21:59:43.10 -5',
  '0.0.0.0', '10.0.0.1', '10.0.0.1:53', '[::1]:53', 'fe80::1', '5s', '1h30m', '100ms', '10.88.0.0/16',
  '9007199254740993', '123456789012345678901234567890', '0x123456789abcdef0123', '1e400', '-1e400', '4.9e-324',
  '-', '+', '.', '..', '+.', '-.', '=', '<<', 'a b', ' x', 'x ', '"q"', "'q'", 'é', 'dnsrr', 'cluster.local',
];

t.test('plain, quoted and tagged scalars mean the same to both readers', async (t) => {
  let read = 0;
  for (const s of SCALARS) {
    for (const text of [`v: ${s}\n`, `v: "${s.replace(/["\\]/g, '\\$&')}"\n`, `v: '${s.replace(/'/g, "''")}'\n`, `v: [${s}]\n`, `v: {k: ${s}}\n`, `- ${s}\n`, `${s}: 1\n`, `{${s}: 1}\n`]) {
      const fast = jsYaml(text);
      if (parseDocument(text, { uniqueKeys: true }).errors.length > 0) {
        t.equal(fast, null, `${JSON.stringify(text)}: js-yaml does not take what yaml refuses`);
        t.ok(thrown(() => readYaml(text)) instanceof YamlSyntaxError, `${JSON.stringify(text)}: refused as invalid YAML`);
        continue;
      }
      const slow = viaYaml(text);
      if (fast) {
        read++;
        t.ok(same(fast.value, slow), `${JSON.stringify(text)}: js-yaml ${show(fast.value)}, yaml ${show(slow)}`);
      }
      t.ok(same(readYaml(text).value, slow), `${JSON.stringify(text)}: readYaml ${show(readYaml(text).value)}`);
    }
  }
  t.ok(read > SCALARS.length * 6, `js-yaml read ${read} of ${SCALARS.length * 8} documents`);
  for (const [tag, v] of [['!!str', '12'], ['!!int', '"12"'], ['!!float', '1'], ['!!null', '""'], ['!!bool', '"true"'], ['!!int', '0x10'], ['!!str', 'true']]) {
    const text = `v: ${tag} ${v}\n`;
    t.ok(same(readYaml(text).value, viaYaml(text)), `${text.trim()}: ${show(readYaml(text).value)}`);
  }
});

t.test('documents with structure mean the same to both readers', async (t) => {
  // [document, read by js-yaml (not left to yaml)]
  const docs: Array<[string, boolean]> = [
    ['services:\n  - name: web\n    endpoints:\n      - {address: 10.0.0.1, hostname: h0, ports: {http: 8080}}\n      - address: 10.0.0.2\n        weight: 5\n', true],
    ['upstream-dns: [1.1.1.1, "9.9.9.9"]\nttl: 5s\n# a comment\nlog-level: debug\n', true],
    ['key: |\n  two\n  lines\nfolded: >\n  one\n  line\n\nkept: |+\n  x\n\n', true],
    ['\ufeffbom: 1\n', true],
    ['? complex\n: value\n1: numeric key\n', true],
    ['%YAML 1.2\n---\nv: 1\n...\n', true],
    ['', true],
    ['# only a comment\n', true],
    ['empty:\nnext: 1\n', true],
    ['[a, b]: 1\n', false],
    ['{c: d}: 2\n', false],
    ['? - e\n  - f\n: 3\n', false],
    ['? - e\n  - f\n# between\n: 3\n', false],
    ['~: 4\n', false],
    ['ports: {[http]: 80}\n', false],
  ];
  for (const [text, fast] of docs) {
    const name = JSON.stringify(text.slice(0, 30));
    t.equal(jsYaml(text) !== null, fast, fast ? `js-yaml reads ${name}` : `a key js-yaml would spell otherwise: ${name} left to yaml`);
    t.ok(same(readYaml(text).value, viaYaml(text) ?? null), name);
  }
});

t.test('what js-yaml refuses or may not bound is read by yaml, as before', async (t) => {
  // Nested past js-yaml's depth limit: yaml reads it.
  const deep = `v: ${'['.repeat(150)}1${']'.repeat(150)}\n`;
  t.equal(jsYaml(deep), null);
  t.ok(same(readYaml(deep).value, viaYaml(deep)), 'a document nested 150 deep');
  // Anchors and aliases: yaml's alias count bounds what they expand to.
  const aliases = 'a: &x [1, 2]\nb: *x\n';
  t.equal(jsYaml(aliases), null);
  t.same(readYaml(aliases).value, { a: [1, 2], b: [1, 2] });
  const bomb = ['a: &a [x, x]', ...Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(8).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n') + '\n';
  t.throws(() => readYaml(bomb), /alias/i, 'an alias bomb is refused, not expanded');
});

t.test('invalid YAML: yaml\'s message and place', async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ['ttl: [5s\n', 2, /flow sequence|expected/i],
    ['a: 1\na: 2\n', 2, /unique/i],
    ['a: 1\n  b: 2\n', 2, /./],
    ['--- 1\n--- 2\n', 2, /multiple documents|document/i],
  ];
  for (const [text, line, message] of cases) {
    const err = thrown(() => readYaml(text));
    t.ok(err instanceof YamlSyntaxError, JSON.stringify(text));
    if (!(err instanceof YamlSyntaxError)) continue;
    t.match(err.message, message, JSON.stringify(text));
    t.ok(err.line >= 1 && err.line <= line && err.col >= 1, `${JSON.stringify(text)}: line ${err.line} column ${err.col} (at most line ${line})`);
  }
  // yaml only warns for a tag it cannot resolve: the value is yaml's, as before.
  t.same(readYaml('v: !!int abc\n').value, viaYaml('v: !!int abc\n'));
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

