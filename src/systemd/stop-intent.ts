import type dbus from 'dbus-next';

// A restart is not a leave. When the daemon gets SIGTERM it asks systemd which job is queued for
// its unit: `systemctl restart`, a package upgrade (try-restart) and the like run a restart job,
// whose stop half is this very SIGTERM; `systemctl stop`, `disable --now` and a package removal
// run a stop job. Only a stop announces the leave (and withdraws this host's endpoints from
// every other host); on a restart the containers keep running and the next process answers for
// them. Anything else — no systemd, no job (a plain `kill`), no answer on the bus in time — is
// treated as a stop, as before.

export type StopIntent = 'restart' | 'stop';

export interface StopDecision {
  intent: StopIntent;
  /** Why, for the log line. */
  why: string;
}

/** systemd job types that start the unit again once it has stopped. */
const RESTART_JOBS = new Set(['restart', 'try-restart', 'reload-or-restart', 'reload-or-try-restart']);

/** The decision for the job systemd has queued for the unit (null: none). Pure. */
export function intentOfJob(jobType: string | null): StopDecision {
  if (jobType === null) return { intent: 'stop', why: 'systemd has no job queued for the unit (stopped by a signal)' };
  if (RESTART_JOBS.has(jobType)) return { intent: 'restart', why: `systemd is running a ${jobType} job for the unit` };
  return { intent: 'stop', why: `systemd is running a ${jobType} job for the unit` };
}

const SYSTEMD = { destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager' };

export interface StopIntentOptions {
  /** How to reach the system bus (tests: a private bus). */
  bus?: () => dbus.MessageBus;
  timeoutMs?: number;
  pid?: number;
}

/**
 * Asks systemd (over the system bus) why we are stopping. Only under systemd (INVOCATION_ID is
 * set for every unit it runs); bounded by `timeoutMs`; never throws.
 */
export async function stopIntent(env: NodeJS.ProcessEnv, o: StopIntentOptions = {}): Promise<StopDecision> {
  if (!env.INVOCATION_ID && !o.bus) return { intent: 'stop', why: 'not run by systemd' };
  let bus: dbus.MessageBus | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    const lib = (await import('dbus-next')).default;
    const b = (bus = (o.bus ?? (() => lib.systemBus()))());
    // A bus that cannot connect emits 'error'; without a listener that would be thrown.
    b.on('error', () => undefined);
    const ask = async (): Promise<string | null> => {
      const call = async (m: { destination: string; path: string; interface: string; member: string; signature?: string; body?: unknown[] }): Promise<dbus.Message> => {
        const reply = await b.call(new lib.Message(m));
        if (!reply) throw new Error(`no reply to ${m.member}`);
        return reply;
      };
      const unit = (await call({ ...SYSTEMD, member: 'GetUnitByPID', signature: 'u', body: [o.pid ?? process.pid] })).body[0] as string;
      const prop = async (path: string, iface: string, name: string): Promise<unknown> =>
        ((await call({ destination: SYSTEMD.destination, path, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [iface, name] })).body[0] as dbus.Variant).value;
      const [jobId, jobPath] = (await prop(unit, 'org.freedesktop.systemd1.Unit', 'Job')) as [number, string];
      if (!jobId) return null;
      return String(await prop(jobPath, 'org.freedesktop.systemd1.Job', 'JobType'));
    };
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${o.timeoutMs ?? 1000} ms`)), o.timeoutMs ?? 1000);
    });
    return intentOfJob(await Promise.race([ask(), timeout]));
  } catch (e) {
    return { intent: 'stop', why: `could not ask systemd for the unit's job (${(e as Error).message})` };
  } finally {
    clearTimeout(timer);
    try {
      bus?.disconnect();
    } catch {
      /* already closed */
    }
  }
}
