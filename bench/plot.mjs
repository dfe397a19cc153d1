// SVG charts for the bench scripts: grouped bars and lines, written as plain SVG text (no
// browser, no canvas, no dependency), readable on GitHub and in any browser. The bench scripts
// call these with a run's figures; bench/plots.mjs draws the figures recorded in RESULTS.md.
//
//   barChart({ title, yLabel, categories: ['native', 'knot'], series: [{ name: 'QPS', values: [1, 2] }] })
//   lineChart({ title, xLabel, yLabel, logX: true, series: [{ name, points: [[x, y], ...] }] })
//   writePlot('dns', svg) → bench/plots/dns.svg
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PLOTS = join(dirname(fileURLToPath(import.meta.url)), 'plots');

const W = 720;
const H = 400;
const M = { top: 56, right: 24, bottom: 64, left: 76 };
// Okabe–Ito: told apart with the common colour-vision deficiencies.
const COLORS = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const r1 = (n) => Math.round(n * 10) / 10;

/** 1234567 → 1.23M; 0.25 → 0.25. */
export function short(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(n / 1e3).toPrecision(3)}k`;
  return `${+n.toPrecision(3)}`;
}

/** Round tick values from 0 (or lo) to at least max, about `n` of them. */
function ticks(lo, max, n = 5) {
  const raw = (max - lo) / n || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.floor(lo / step) * step; v < max + step * 0.999 && out.length < 50; v += step) out.push(+v.toPrecision(12));
  return out;
}

/** Powers of ten spanning [lo, hi] (log axes). */
function decades(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)) && out.length < 20; e++) out.push(10 ** e);
  return out;
}

function frame(title, xLabel, yLabel, body, legend) {
  const items = legend
    .map((name, i) => {
      const x = M.left + i * Math.min(160, (W - M.left - M.right) / legend.length);
      return `<rect x="${r1(x)}" y="30" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${r1(x + 16)}" y="40">${esc(name)}</text>`;
    })
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12" fill="#222">`,
    `<title>${esc(title)}</title><rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${M.left}" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    items,
    body,
    `<text x="${r1(M.left + (W - M.left - M.right) / 2)}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${r1(M.top + (H - M.top - M.bottom) / 2)}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    '</svg>\n',
  ].join('\n');
}

/** A y axis with grid lines; returns the svg and the value → y mapping. */
function yAxis(lo, hi, log) {
  const top = M.top;
  const bottom = H - M.bottom;
  const vals = log ? decades(lo, hi) : ticks(lo, hi);
  const [a, b] = log ? [Math.log10(vals[0]), Math.log10(vals.at(-1))] : [vals[0], vals.at(-1)];
  const y = (v) => bottom - ((log ? Math.log10(v) : v) - a) / (b - a || 1) * (bottom - top);
  const svg = vals
    .map((v) => `<line x1="${M.left}" x2="${W - M.right}" y1="${r1(y(v))}" y2="${r1(y(v))}" stroke="#ddd"/><text x="${M.left - 6}" y="${r1(y(v) + 4)}" text-anchor="end">${short(v)}</text>`)
    .join('');
  return { svg: `${svg}<line x1="${M.left}" x2="${M.left}" y1="${top}" y2="${bottom}" stroke="#888"/>`, y };
}

/** Grouped bars: one group per category, one bar per series, value printed above each bar. */
export function barChart({ title, xLabel = '', yLabel, categories, series }) {
  const max = Math.max(...series.flatMap((s) => s.values.filter(Number.isFinite)), 0);
  const { svg: axis, y } = yAxis(0, max || 1, false);
  const groupW = (W - M.left - M.right) / categories.length;
  const barW = Math.min(56, (groupW * 0.8) / series.length);
  const bars = categories.map((c, ci) => {
    const x0 = M.left + ci * groupW + (groupW - barW * series.length) / 2;
    const cols = series.map((s, si) => {
      const v = s.values[ci];
      if (!Number.isFinite(v)) return '';
      const x = x0 + si * barW;
      return `<rect x="${r1(x)}" y="${r1(y(v))}" width="${r1(barW - 2)}" height="${r1(y(0) - y(v))}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${c}, ${s.name}: ${v}`)}</title></rect>` +
        `<text x="${r1(x + barW / 2 - 1)}" y="${r1(y(v) - 4)}" text-anchor="middle" font-size="10">${short(v)}</text>`;
    });
    const label = `<text x="${r1(M.left + ci * groupW + groupW / 2)}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(c)}</text>`;
    return cols.join('') + label;
  });
  return frame(title, xLabel, yLabel, axis + bars.join('') + `<line x1="${M.left}" x2="${W - M.right}" y1="${r1(y(0))}" y2="${r1(y(0))}" stroke="#888"/>`, series.map((s) => s.name));
}

/** Lines with points; `logX`/`logY` for values spanning decades (N = 10, 100, 1000). */
export function lineChart({ title, xLabel, yLabel, series, logX = false, logY = false }) {
  const pts = series.flatMap((s) => s.points).filter(([x, v]) => Number.isFinite(x) && Number.isFinite(v));
  const xs = pts.map((p) => p[0]);
  const vs = pts.map((p) => p[1]);
  const { svg: axis, y } = yAxis(logY ? Math.min(...vs) : 0, Math.max(...vs), logY);
  const xt = logX ? decades(Math.min(...xs), Math.max(...xs)) : ticks(Math.min(...xs, 0), Math.max(...xs));
  const [a, b] = logX ? [Math.log10(xt[0]), Math.log10(xt.at(-1))] : [xt[0], xt.at(-1)];
  const x = (v) => M.left + 12 + ((logX ? Math.log10(v) : v) - a) / (b - a || 1) * (W - M.left - M.right - 24);
  const xAxis = xt.map((v) => `<text x="${r1(x(v))}" y="${H - M.bottom + 16}" text-anchor="middle">${short(v)}</text>`).join('') +
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#888"/>`;
  const lines = series.map((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.filter(([px, v]) => Number.isFinite(px) && Number.isFinite(v));
    const path = p.map(([px, v], k) => `${k ? 'L' : 'M'}${r1(x(px))} ${r1(y(v))}`).join(' ');
    const dots = p.map(([px, v]) => `<circle cx="${r1(x(px))}" cy="${r1(y(v))}" r="3.5" fill="${c}"><title>${esc(`${s.name}: ${px} → ${v}`)}</title></circle>` +
      `<text x="${r1(x(px) + 6)}" y="${r1(y(v) - 6)}" font-size="10" fill="${c}">${short(v)}</text>`).join('');
    return `<path d="${path}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>${dots}`;
  });
  return frame(title, xLabel, yLabel, axis + xAxis + lines.join(''), series.map((s) => s.name));
}

/** Writes bench/plots/<name>.svg (or into `dir`); returns the path. */
export function writePlot(name, svg, dir = PLOTS) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.svg`);
  writeFileSync(file, svg);
  return file;
}
