import type { NodeIdentity } from '../gossip/identity.js';
import type { LocalNode } from '../registry/local.js';
import { plural, type Context, type Part } from '../part.js';
import { readTokenFile, stateApiToken, type StateToken } from './api-token.js';
import { observeWrites, removeStaleTemps } from './files.js';
import { StateDirHealth } from './health.js';
import { loadNodeKey } from './node-key.js';
import { RegistrationStore } from './registrations.js';

// The state directory: the node key (and so the node id), the API token, the API registrations,
// and the health of every write to it.

export interface StateSetup extends Part {
  identity: NodeIdentity;
  store: RegistrationStore;
  health: StateDirHealth;
  /** --api-token-file's token (a ConfigError when unreadable), or the one kept in the state directory. */
  apiToken(file: string): string;
  /** Puts the API registrations saved by the previous run into `local`. */
  restore(local: LocalNode): void;
}

export function setupState(c: Context): StateSetup {
  const { log, problems } = c;
  const dir = c.rt.stateDir;
  const health = new StateDirHealth(dir);
  const stopObserving = observeWrites((w) => {
    const change = health.record(w);
    if (!change) return;
    if (change.error) log.warn({ file: change.file }, `state directory ${dir}: ${change.error}; the previous ${change.file} is kept`);
    else log.info({ file: change.file }, `state directory ${dir}: ${change.file} is written again`);
  });
  const stale = removeStaleTemps(dir);
  if (stale.length) log.info({ files: stale }, `removed ${plural(stale.length, 'temp file')} a killed daemon left in ${dir}`);

  const key = loadNodeKey(dir);
  for (const note of key.notes) log.info(note);
  for (const warning of key.warnings) log.warn(warning);
  if (key.problem) problems.set('state-dir', `${key.problem}; API registrations may not survive a restart either`);

  const store = new RegistrationStore(dir);
  /** The token made in the state directory, once it is needed (no --api-token-file). */
  let own: StateToken | null = null;
  return {
    identity: key.identity,
    store,
    health,
    apiToken(file) {
      if (file) return readTokenFile(file);
      if (!own) {
        own = stateApiToken(dir);
        if (own.unsaved) {
          problems.set('api-token', `could not save the API token to ${own.path} (${own.unsaved}): writes over TCP need a token nobody has; use the unix socket or --api-token-file`);
        } else if (own.created) {
          log.info({ path: own.path }, `made an API token in ${own.path}: writes over TCP need "Authorization: Bearer <its content>"; the unix socket needs none`);
        }
      }
      return own.token;
    },
    restore(local) {
      const { endpoints, skipped, warnings, problem } = store.load();
      local.replaceSource('api', endpoints);
      if (endpoints.length) log.info({ count: endpoints.length }, `restored ${endpoints.length} API-registered endpoints from ${store.path} and its journal`);
      for (const why of skipped) log.warn(`not restoring the API registration ${why}`);
      for (const why of warnings) log.warn(`API registrations: ${why}`);
      if (problem) problems.set('registrations', problem);
    },
    async stop() {
      await store.close();
      stopObserving();
    },
  };
}
