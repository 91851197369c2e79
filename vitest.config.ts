// One vitest run for the whole workspace. Packages are imported from their TypeScript sources
// (`@ssd/x` → packages/x/src/index.ts), so tests need no build. Each test file runs in a forked
// process (Dawn's native addon and lavapipe threads do not belong in worker threads).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: Object.fromEntries(['tensor', 'kernels', 'clip', 'unet', 'vae', 'pipeline'].map((p) => [`@ssd/${p}`, pkg(p)])),
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'bench/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    execArgv: ['--expose-gc'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
