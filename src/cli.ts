#!/usr/bin/env node
import { serveStoredDns } from './systemd/early-dns.js';

// Entry point. Before anything else is loaded: after a restart under systemd, the stored DNS
// sockets are answered from the previous run's table at once (src/systemd/early-dns.ts); then
// the commands (cli-main.ts), the daemon among them, are loaded and run.

if (process.argv[2] === 'daemon') serveStoredDns(process.env);
await import('./cli-main.js');
