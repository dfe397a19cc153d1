import { Daemon } from '../daemon.js';
import { ConfigError } from '../config/errors.js';
import { BindError } from '../dns/server.js';
import { loadConfig, type LoadInput } from '../config/load.js';
import { loadAddon, sdNotify } from '../native/index.js';
import { attachSystemd } from '../systemd/service.js';
import { stopIntent } from '../systemd/stop-intent.js';

// `podman-swarm-dns daemon`: start, then live until SIGTERM/SIGINT; SIGHUP reloads.

export async function runDaemon(input: LoadInput): Promise<number> {
  const loaded = loadConfig(input);
  const daemon = new Daemon(loaded, input);
  const { log } = daemon;
  // sd_notify + watchdog. The native addon's sdNotify goes in as the third argument when loaded.
  const native = loadAddon(process.env).addon ? { sdNotify: (m: string) => sdNotify(m, process.env) } : null;
  const systemd = attachSystemd({ log, counts: () => daemon.counts(), onChange: (f) => daemon.registry.onChange(f), selfQuery: (t) => daemon.selfQuery(t) }, process.env, native);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, `unexpected error, exiting: ${err.message}`);
    process.exit(70);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, `unexpected error, exiting: ${(err as Error)?.message ?? String(err)}`);
    process.exit(70);
  });
  try {
    await daemon.start();
  } catch (e) {
    // Expected failures (bad config, an address we cannot bind) read best as one line.
    const expected = e instanceof ConfigError || e instanceof BindError;
    log.error(expected ? {} : { err: e }, (e as Error).message);
    systemd.failed((e as Error).message);
    await daemon.stop().catch(() => undefined);
    return e instanceof ConfigError ? 2 : 1;
  }
  systemd.ready();
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, `received ${signal}`);
      systemd.stopping();
      stopIntent(process.env).then((d) => {
        log.info({ intent: d.intent, why: d.why }, d.intent === 'restart'
          ? `${d.why}: a restart, not a leave; the other hosts keep this host's endpoints`
          : `${d.why}: leaving the cluster`);
        return daemon.stop(d.intent === 'restart');
      }).then(
        () => resolve(0),
        (e: unknown) => {
          log.error({ err: e }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      systemd.reloading();
      daemon.reload().then(
        (r) => systemd.reloaded(r),
        // Logged by reload; the running configuration stays.
        (e: unknown) => systemd.reloaded({ error: (e as Error).message }),
      );
    });
  });
}
