// The opt-in real-size suite (`pnpm test:real`): packages/*/test-real/**, real SDXL-family model sizes
// with random weights generated in-process. Minutes per test on lavapipe, so it is not part of
// `pnpm test`; same aliases and process model as vitest.config.ts (whose include list is replaced,
// not merged: mergeConfig would concatenate the two lists).
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['packages/*/test-real/**/*.test.ts'],
    maxWorkers: 1,
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
  },
});
