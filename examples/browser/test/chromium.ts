// Launching Debian's chromium through playwright-core for the browser tests, with the flags that give
// WebGPU on a GPU-less machine (../shared/reference/webgpu-env.md: SwiftShader, no shader-f16) and a
// fresh user-data folder per launch (an empty OPFS and Cache API).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_FLAGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-gpu-sandbox',
  '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

/** $SSD_CHROMIUM, else /usr/bin/chromium (Debian), else null. */
export function chromiumPath(): string | null {
  for (const p of [process.env.SSD_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) if (p && existsSync(p)) return p;
  return null;
}

export interface Browser {
  context: BrowserContext;
  userDataDir: string;
  close(): Promise<void>;
}

export async function launch(userDataDir = mkdtempSync(join(tmpdir(), 'ssd-chromium-'))): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) {
    throw new Error('no chromium: install Debian\'s (`sudo apt-get install -y --no-install-recommends chromium`, or `sudo bash scripts/setup-webgpu.sh --chromium`) or set SSD_CHROMIUM to a Chromium binary');
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, ignoreDefaultArgs: ['--headless'], args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    userDataDir,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
