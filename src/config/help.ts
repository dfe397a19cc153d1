import { envName, OPTIONS, type Group, type OptionDef } from './options.js';

// `--help` for the daemon options, generated from the option table so it cannot drift.

export const GROUPS: Group[] = ['General', 'DNS', 'API', 'Cluster', 'Podman', 'Health', 'Load balancer', 'systemd'];

export function optionsHelp(width = 100): string {
  const out: string[] = [];
  for (const group of GROUPS) {
    out.push(`${group} options:`);
    for (const d of optionsInGroup(group)) {
      const flag = flagText(d);
      const dflt = d.defaultText ?? showDefault(d);
      const envs = envNames(d).join(', ');
      const lines = [
        helpText(d),
        `default: ${dflt}; env: ${envs}${d.noFile ? '' : `; file key: ${d.name}`}`,
        `form: ${d.kind.form}`,
      ];
      out.push(`  ${flag}`);
      for (const l of lines) out.push(...wrap(l, width - 6).map((w) => `      ${w}`));
    }
    out.push('');
  }
  return out.join('\n');
}

// The pieces below are shared with the man page and the sample config (docs.ts).

export const optionsInGroup = (group: Group): OptionDef<unknown>[] =>
  (Object.values(OPTIONS) as OptionDef<unknown>[]).filter((x) => x.group === group);

export const flagText = (d: OptionDef<unknown>): string =>
  d.kind.arg === '' ? `--[no-]${d.name}` : `--${d.name} <${d.kind.arg}>`;

export const envNames = (d: OptionDef<unknown>): string[] => [envName(d.name), ...(d.env ?? [])];

export const helpText = (d: OptionDef<unknown>): string =>
  d.help + (d.pending ? ` (accepted now; takes effect with ${d.pending})` : '') + (d.live ? '; a reload applies it' : '');

export function showDefault(d: OptionDef<unknown>): string {
  const v = d.default;
  if (v === '' || (Array.isArray(v) && v.length === 0)) return 'none';
  return d.kind.show(v);
}

function wrap(text: string, width: number): string[] {
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}
