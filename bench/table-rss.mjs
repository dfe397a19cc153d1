// What a fresh process's RSS grows by when the addon installs a table file (bench/table-file.mjs),
// 500 ms later (the addon gives freed memory back on a thread of its own).
//
//   node bench/table-rss.mjs ADDON.node TABLE
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(import.meta.url);
const addon = require(process.argv[2]);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
let b = readFileSync(process.argv[3]);
await new Promise((r) => setTimeout(r, 300));
const before = rss();
addon.setTable(b);
b = null;
await new Promise((r) => setTimeout(r, 500));
const after = rss();
console.log(`${process.argv[3]}: ${(after - before).toFixed(1)} MB (RSS ${before.toFixed(1)} -> ${after.toFixed(1)})`);
