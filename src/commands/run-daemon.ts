import { Daemon } from '../daemon.js';
import { ConfigError } from '../config/errors.js';
import { BindError } from '../dns/server.js';
import { loadConfig, type LoadInput } from '../config/load.js';

// `podman-swarm-dns daemon`: start, then live until SIGTERM/SIGINT; SIGHUP reloads.

export async function runDaemon(input: LoadInput): Promise<number> {
  const loaded = loadConfig(input);
  const daemon = new Daemon(loaded, input);
  const { log } = daemon;
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
    await daemon.stop().catch(() => undefined);
    return e instanceof ConfigError ? 2 : 1;
  }
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, `received ${signal}`);
      daemon.stop().then(
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
      try {
        daemon.reload();
      } catch {
        /* logged by reload; the running configuration stays */
      }
    });
  });
}
