// One vitest run for the whole workspace. Packages are imported from their TypeScript sources
// (`@ssd/x` → packages/x/src/index.ts), so tests need no build. Each test file runs in a forked
// process (Dawn's native addon and lavapipe threads do not belong in worker threads).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // exact matches, so that a subpath export (`@ssd/pipeline/browser`) is not taken for a file in `src/index.ts`
    alias: [
      { find: '@ssd/pipeline/browser', replacement: src('pipeline/src/browser/index.ts') },
      { find: /^@ssd\/tensor\/testing$/, replacement: src('tensor/src/testing.ts') },
      ...['tensor', 'kernels', 'clip', 'unet', 'vae', 'pipeline'].map((p) => ({ find: new RegExp(`^@ssd/${p}$`), replacement: src(`${p}/src/index.ts`) })),
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'testing/**/*.test.ts', 'bench/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    execArgv: ['--expose-gc'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
