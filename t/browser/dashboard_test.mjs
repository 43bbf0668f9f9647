// Drives torii's admin dashboard in Debian's headless Chromium (playwright-core, no browser
// download), for t/integration/test_dashboard.py, which starts torii, its backends and the
// traffic, and talks with this script over stdin/stdout lines:
//   this script prints "STEP <name>" as it passes each check and "WAIT <what>" when the
//   test must act (stop a target), then reads one line ("go") before going on;
//   "OK <json>" at the end, or "FAIL <message>" and exit code 1.
//
// node dashboard_test.mjs ADMIN_URL TOKEN DOWN_TARGET BREAKER_NAME SCREENSHOT_DIR
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const [adminUrl, token, downTarget, breakerName, shotDir] = process.argv.slice(2);
const origin = new URL(adminUrl).origin;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (text) => process.stdout.write(text + '\n');
const step = (name) => say('STEP ' + name);

async function waitFor(page, what, fn, arg, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error('timed out waiting for ' + what);
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Nothing may leave loopback: no background services, no QUIC, and every host name but
    // the loopback literals unresolvable.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-default-apps', '--disable-extensions',
           '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(adminUrl);

    // With [admin] token set, the page asks for it; a wrong one is refused.
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10000 });
    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button');
    await waitFor(page, 'the wrong-token message',
                  () => document.getElementById('token-error').textContent === 'wrong token');
    await page.fill('#token', token);
    await page.click('#token-form button');
    await page.waitForSelector('#main:not([hidden])', { timeout: 10000 });
    step('token');

    // The upstream table: both targets up, with their weights.
    await waitFor(page, 'both targets up', () =>
      document.querySelectorAll('[data-upstream="api"] [data-health="up"]').length === 2);
    step('targets-up');

    // The locations table shows the chain of /api/ in run order.
    const chain = await page.textContent('tr[data-location="/api/"] .chain');
    if (!/access: stats, ratelimit/.test(chain) || !/balance: round_robin/.test(chain))
      throw new Error('unexpected chain of /api/: ' + chain);
    step('chain');

    // A chart updating: the requests/s chart draws more points as refreshes come, and its
    // last value for /api/ is the traffic the test is sending.
    const points = () => Number(document.getElementById('chart-rps').dataset.points || 0);
    const before = await page.evaluate(points);
    await waitFor(page, 'the requests/s chart to grow', (n) =>
      Number(document.getElementById('chart-rps').dataset.points || 0) >= n + 3, before);
    await waitFor(page, 'requests/s of /api/ above zero', () => {
      const last = JSON.parse(document.getElementById('chart-rps').dataset.last || '{}');
      return Object.entries(last).some(([k, v]) => k.endsWith(' /api/') && v > 0);
    });
    step('chart');

    // A target turning unhealthy: the test stops it, the active check marks it down.
    say('WAIT stop-target');
    await lines.next();
    await waitFor(page, downTarget + ' down', (t) => {
      const row = document.querySelector('[data-upstream="api"] tr[data-target="' + t + '"]');
      return row && row.querySelector('[data-health="down"]');
    }, downTarget, 20000);
    await waitFor(page, 'the targets-up card to count one down', () => {
      const card = document.querySelector('[data-card="targets up"] .value');
      const m = card && /^(\d+) \/ (\d+)$/.exec(card.textContent);
      return m && Number(m[1]) === Number(m[2]) - 1 && card.classList.contains('bad');
    });
    step('target-down');

    // A breaker opening: /flaky/ answers 500 to every request the test sends.
    await waitFor(page, 'the breaker to open', (name) => {
      const row = document.querySelector('#breakers tr[data-breaker="' + name + '"]');
      return row && row.dataset.state === 'open';
    }, breakerName, 20000);
    step('breaker-open');

    // Rate-limit rejections reach the locations table.
    await waitFor(page, '429s on /api/', () => {
      const cell = document.querySelector('tr[data-location="/api/"] [data-field="limited"]');
      return cell && Number(cell.textContent) > 0;
    });
    step('rate-limited');

    await page.screenshot({ path: shotDir + '/dashboard.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });  // a phone
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error('the page is ' + overflow + ' px wider than a phone screen');
    await page.screenshot({ path: shotDir + '/dashboard-phone.png', fullPage: true });
    step('screenshots');

    if (errors.length) throw new Error('page errors: ' + errors.join('; '));
    say('OK ' + JSON.stringify({ foreign }));
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (e) => {
  say('FAIL ' + e.message);
  process.exit(1);
});
