import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { promisify } from 'node:util';

// The daemon's own link (docs/architecture.md#dns): it holds the cluster DNS address and, later, the service
// VIPs. A dummy link where the kernel has the type, else a bridge with no ports (a port-less
// bridge answers for its addresses just the same). Managed through iproute2, which needs
// CAP_NET_ADMIN.

const run = promisify(execFile);

export class LinkError extends Error {}

async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new LinkError('the ip command (iproute2) is not installed');
    throw new LinkError(`ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

export interface LinkInfo {
  name: string;
  type: 'dummy' | 'bridge' | 'existing';
}

/** Creates `name` if missing (dummy, else bridge), brings it up; returns what was done. */
export async function ensureLink(name: string): Promise<LinkInfo> {
  try {
    await ip('link', 'show', 'dev', name);
    await ip('link', 'set', 'dev', name, 'up');
    return { name, type: 'existing' };
  } catch (e) {
    if (e instanceof LinkError && /not installed/.test(e.message)) throw e;
  }
  let type: LinkInfo['type'] = 'dummy';
  try {
    await ip('link', 'add', name, 'type', 'dummy');
  } catch (e) {
    // No dummy driver (these test kernels, some containers): a bridge without ports instead.
    if (!/not supported|Unknown device type|Operation not supported/i.test((e as Error).message)) throw e;
    type = 'bridge';
    await ip('link', 'add', name, 'type', 'bridge');
  }
  await ip('link', 'set', 'dev', name, 'up');
  return { name, type };
}

export async function addAddress(link: string, address: string): Promise<void> {
  const prefix = isIP(address) === 6 ? 128 : 32;
  // `replace` is idempotent: a leftover address from a crashed run is fine.
  await ip('addr', 'replace', `${address}/${prefix}`, 'dev', link);
}

export async function removeLink(name: string): Promise<void> {
  await ip('link', 'del', 'dev', name);
}

export async function removeAddress(link: string, address: string): Promise<void> {
  const prefix = isIP(address) === 6 ? 128 : 32;
  await ip('addr', 'del', `${address}/${prefix}`, 'dev', link);
}
