import t from 'tap';
import { existsSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/until.js';

// The status page in a real browser (Debian's chromium, headless) against a real daemon: it
// loads without console errors, shows what the API registers, follows changes without a reload,
// marks unhealthy endpoints, filters by the search box, fits a phone-width screen, and survives
// the daemon going away. UI_SCREENSHOT=<file.png> saves a screenshot for a person to look at.

const CHROMIUM = '/usr/bin/chromium';

if (!existsSync(CHROMIUM)) {
  if (process.env.CI) t.fail(`${CHROMIUM} is missing: .ci/run installs the chromium package`);
  else t.plan(0, `${CHROMIUM} is missing (apt-get install chromium): the status page is not tested in a browser`);
} else {
  t.test('status page in chromium', async (t) => {
    const open = await listening(t);
    const closedPort = await freePort();
    // VIPs in 127.71/16: the load balancer runs on loopback, without a link.
    const d = await startDaemon(t, { args: ['--health-interval', '200ms', '--health-timeout', '200ms', '--service-cidr', '127.71.0.0/16', '--default-mode', 'vip'] });
    const register = async (daemon: RunningDaemon, svc: string, id: string, port: number): Promise<void> => {
      const res = await fetch(`${daemon.api}/api/v1/services/default/${svc}/endpoints`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...daemon.auth() },
        body: JSON.stringify({ id, address: '127.0.0.1', ports: { http: port }, health: 'tcp' }),
      });
      t.equal(res.status, 201, `registered ${svc}/${id}`);
    };
    await register(d, 'web', 'web-1', open);

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    t.teardown(() => browser.close());
    const page: Page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));

    await page.goto(`${d.api}/ui/`);
    await page.locator('[data-endpoint="default/web/web-1"][data-health="healthy"]').waitFor({ timeout: 10_000 });
    t.equal(await page.locator('#conn').getAttribute('data-state'), 'live', 'the page says it is live');
    t.match(await page.locator('#members').innerText(), /this node/, 'members list this node');

    await t.test('a new endpoint shows within 2 s, without a reload', async (t) => {
      await register(d, 'web', 'web-2', open);
      await page.locator('[data-endpoint="default/web/web-2"]').waitFor({ timeout: 2000 });
      t.pass('web-2 is on the page');
    });

    await t.test('an unhealthy endpoint is marked, with the reason', async (t) => {
      await register(d, 'web', 'web-3', closedPort);
      const row = page.locator('[data-endpoint="default/web/web-3"][data-health="unhealthy"]');
      await row.waitFor({ timeout: 10_000 });
      t.match(await row.innerText(), /unhealthy: .*(refused|ECONNREFUSED)/i, 'the failing check says why');
      t.match(await page.locator('[data-service="default/web"] h3').innerText(), /2\/3 healthy/);
    });

    await t.test('the search box filters services', async (t) => {
      await register(d, 'db', 'db-1', open);
      await page.locator('[data-service="default/db"]').waitFor({ timeout: 5000 });
      await page.locator('#search').fill('db');
      await until('only db shown', async () => (await page.locator('[data-service]').count()) === 1 && (await page.locator('[data-service="default/db"]').count()) === 1, 5000);
      await page.locator('#search').fill('nothing-like-this');
      await until('no service shown', async () => (await page.locator('[data-service]').count()) === 0, 5000);
      t.match(await page.locator('#services').innerText(), /no service matches/);
      await page.locator('#search').fill('');
      await until('both shown again', async () => (await page.locator('[data-service]').count()) === 2, 5000);
      t.pass('filtered and unfiltered');
    });

    await t.test('keyboard: Tab reaches the skip link, Enter on it leads to the search box', async (t) => {
      const fresh = await browser.newPage();
      t.teardown(() => fresh.close());
      await fresh.goto(`${d.api}/ui/`);
      await fresh.locator('[data-service="default/web"]').waitFor({ timeout: 5000 });
      await fresh.keyboard.press('Tab');
      t.equal(await fresh.evaluate('document.activeElement.textContent'), 'Skip to services');
      await fresh.keyboard.press('Enter');
      t.equal(await fresh.evaluate('location.hash'), '#services');
      await fresh.keyboard.press('Tab');
      t.equal(await fresh.evaluate('document.activeElement.id'), 'search', 'the next Tab is the search box');
      await fresh.keyboard.type('db');
      await until('the typed search filters', async () => (await fresh.locator('[data-service]').count()) === 1, 5000);
    });

    await t.test('phone width: nothing wider than the screen', async (t) => {
      await page.setViewportSize({ width: 375, height: 800 });
      await until('layout settles', async () => (await page.evaluate<number>('document.documentElement.scrollWidth')) <= 375, 3000).catch(() => undefined);
      t.ok((await page.evaluate<number>('document.documentElement.scrollWidth')) <= 375, 'no sideways scrolling of the page');
      if (process.env.UI_SCREENSHOT) await page.screenshot({ path: process.env.UI_SCREENSHOT.replace(/\.png$/, '-phone.png'), fullPage: true });
      await page.setViewportSize({ width: 1100, height: 900 });
    });

    await t.test('DNS answers show up by response code and path', async (t) => {
      await digShort(d.dnsPort, 'web.default.cluster.local');
      await until('a NOERROR row', async () => /NOERROR/.test(await page.locator('#dns').innerText()), 10_000);
      t.pass('NOERROR counted');
    });

    await t.test('load-balancer counters per VIP and backend', async (t) => {
      const { vip } = (await (await fetch(`${d.api}/api/v1/services/default/web`)).json()) as { vip: string };
      t.match(vip, /^127\.71\./);
      t.match(await page.locator('[data-service="default/web"] .meta').innerText(), `VIP ${vip}`);
      const row = page.locator('#lb tr', { hasText: `127.0.0.1:${open}` });
      await row.first().waitFor({ timeout: 10_000 });
      // One connection through the VIP: the backend's total goes to 1 on the page.
      await until('a connection through the VIP', () => new Promise<boolean>((res) => {
        const c = connect(open, vip, () => { c.destroy(); res(true); });
        c.on('error', () => res(false));
      }), 5000);
      await until('the page counts it', async () => /^127\.0\.0\.1:\d+ \(web-\d\)\s+0\s+[1-9]/m.test(await row.first().innerText().then((s) => s.replace(/\t/g, ' '))), 10_000);
      t.pass('counted');
    });

    if (process.env.UI_SCREENSHOT) await page.screenshot({ path: process.env.UI_SCREENSHOT, fullPage: true });
    t.same(errors, [], 'no console errors while the daemon ran');

    await t.test('the daemon goes away: "disconnected", then back when it is', async (t) => {
      await d.stop();
      await page.locator('#conn[data-state="disconnected"]').waitFor({ timeout: 10_000 });
      t.match(await page.locator('#conn').innerText(), /disconnected/);
      // A new daemon on the same API port, with a service of its own.
      const d2 = await startDaemon(t, { args: ['--api-listen', `127.0.0.1:${d.apiPort}`] });
      await register(d2, 'after', 'a-1', open);
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });
      await page.locator('[data-service="default/after"]').waitFor({ timeout: 5000 });
      t.pass('reconnected and shows the new daemon');
    });
  });
}

/** A TCP port that accepts (a healthy endpoint's), closed at the end of the test. */
async function listening(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server: Server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}
