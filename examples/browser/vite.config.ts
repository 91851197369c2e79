// Vite for the demo: @ssd/* resolve to their TypeScript sources (the packages' "source" export
// condition), workers are ES modules, and the dev/preview servers also serve the bundled tiny model
// (fixtures/models → /models/, with Range requests) so that "Load model" works out of the box.
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig, type Plugin } from 'vite';
import { staticHandler } from './server/static.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const modelsDir = fileURLToPath(new URL('../../fixtures/models', import.meta.url));

function serveBundledModels(): Plugin {
  const handler = staticHandler({ '/models/': modelsDir });
  return {
    name: 'ssd-serve-bundled-models',
    configureServer: (server) => void server.middlewares.use(handler),
    configurePreviewServer: (server) => void server.middlewares.use(handler),
  };
}

export default defineConfig({
  base: './',
  resolve: { conditions: ['source', ...defaultClientConditions] },
  worker: { format: 'es' },
  build: { target: 'es2022', sourcemap: true, chunkSizeWarningLimit: 2048 },
  server: { fs: { allow: [repoRoot] } },
  plugins: [serveBundledModels()],
});
