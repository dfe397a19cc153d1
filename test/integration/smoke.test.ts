import t from 'tap';
import { startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';

t.test('a static service answers over UDP', async (t) => {
  const d = await startDaemon(t, {
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.5\n',
  });
  t.same(await digShort(d.dnsPort, 'web.default.cluster.local'), ['10.0.0.5']);
});
