import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import type { EtcdOptions } from './client.js';

// The etcd options turned into what the client needs (docs/etcd.md): the endpoints, the files read
// once at start (CA, client certificate and key, password), and every inconsistency reported as a
// configuration error naming the option and the fix (exit 2), before anything connects.

export interface EtcdInput {
  etcdEndpoints: string[];
  etcdCaFile: string;
  etcdCertFile: string;
  etcdKeyFile: string;
  etcdUsername: string;
  etcdPasswordFile: string;
}

export function etcdClientOptions(o: EtcdInput, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): EtcdOptions {
  if (o.etcdEndpoints.length === 0) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--registry etcd needs --etcd-endpoints (for example --etcd-endpoints http://10.0.0.1:2379)');
  const file = (flag: string, path: string): string => {
    try {
      return read(path);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_FILE', `--${flag} ${path}: cannot read it (${(e as Error).message})`);
    }
  };
  if (Boolean(o.etcdCertFile) !== Boolean(o.etcdKeyFile)) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--etcd-cert-file and --etcd-key-file go together: give both or neither');
  if (Boolean(o.etcdUsername) !== Boolean(o.etcdPasswordFile)) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--etcd-username and --etcd-password-file go together: give both or neither');
  const tls = o.etcdCaFile || o.etcdCertFile;
  if (tls && !o.etcdEndpoints.every((e) => e.startsWith('https:'))) {
    throw new ConfigError('ERR_CONFIG_BAD_VALUE', `TLS files are given but ${o.etcdEndpoints.filter((e) => !e.startsWith('https:')).join(', ')} is not https://`);
  }
  return {
    endpoints: o.etcdEndpoints,
    ...(o.etcdCaFile ? { ca: file('etcd-ca-file', o.etcdCaFile) } : {}),
    ...(o.etcdCertFile ? { cert: file('etcd-cert-file', o.etcdCertFile), key: file('etcd-key-file', o.etcdKeyFile) } : {}),
    ...(o.etcdUsername ? { username: o.etcdUsername, password: file('etcd-password-file', o.etcdPasswordFile).split('\n')[0]!.trim() } : {}),
  };
}
