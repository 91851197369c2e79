// Makes a fresh clone ready to run: installs the dependencies (pnpm), builds the packages (--build),
// and makes sure a WebGPU adapter exists — on a GPU-less Debian machine, as root, it installs Mesa's
// lavapipe (scripts/setup-webgpu.sh); elsewhere it says what to install. Used by `pnpm test` and
// `pnpm ssd`; cheap when everything is already in place.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const log = (m) => quiet || console.error(`[bootstrap] ${m}`);
const run = (cmd, argv, opts = {}) => {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`[bootstrap] \`${cmd} ${argv.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
};

// 1. dependencies
const lock = join(root, 'pnpm-lock.yaml');
const marker = join(root, 'node_modules/.modules.yaml');
if (!existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs)) {
  log('installing dependencies (pnpm install)');
  run('pnpm', ['install', '--frozen-lockfile']);
}

// 2. build (incremental: a no-op when nothing changed)
if (args.has('--build')) run('pnpm', ['exec', 'tsc', '-b'], { stdio: 'inherit' });

// 3. a WebGPU adapter
const probe = () => spawnSync(process.execPath, [join(root, 'scripts/probe-adapter.mjs')], { cwd: root, encoding: 'utf8' });
let p = probe();
if (p.status !== 0 && process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get') && !process.env.SSD_NO_AUTO_INSTALL) {
  log('no WebGPU adapter: installing the CPU Vulkan driver (Mesa lavapipe from bookworm-backports)');
  run('bash', [join(root, 'scripts/setup-webgpu.sh')]);
  p = probe();
}
if (p.status !== 0) {
  console.error(
    '[bootstrap] no WebGPU adapter found.\n' +
      '  On a GPU machine: install its Vulkan driver and libvulkan1.\n' +
      '  Without a GPU (Debian 12): sudo bash scripts/setup-webgpu.sh   (Mesa lavapipe from bookworm-backports)\n' +
      (p.stderr ? `  probe said: ${p.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''),
  );
  process.exit(1);
}
log(`WebGPU adapter: ${JSON.parse(p.stdout).description}`);

// 4. the browser tests need Debian's chromium (SwiftShader WebGPU); install it like the driver
if (args.has('--chromium') && !existsSync('/usr/bin/chromium') && !process.env.SSD_CHROMIUM) {
  if (process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get') && !process.env.SSD_NO_AUTO_INSTALL) {
    log('installing chromium for the browser tests');
    run('bash', [join(root, 'scripts/setup-webgpu.sh'), '--chromium']);
  } else {
    console.error('[bootstrap] the browser tests need chromium: sudo apt-get install -y --no-install-recommends chromium (or set SSD_CHROMIUM to a Chromium binary)');
  }
}
