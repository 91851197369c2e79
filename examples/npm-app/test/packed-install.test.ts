// @ssd as users get it: every package packed with `pnpm pack`, the tarballs installed with plain `npm`
// into an empty project in the temp folder (outside the workspace: no workspace links, no `source`
// condition, nothing outside each package's `files`), and then there: the packages' manifests, imports,
// types and READMEs checked; generate.mjs run in Node; the installed `ssd` binary run with a prompt full
// of shell-special characters; and index.html + main.js bundled by Vite and run in headless Chromium
// (SwiftShader WebGPU: load the tiny model, tokenize, one kernel; a whole image there takes minutes).
// npm may fetch the packages' third-party dependencies from the registry.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIPTokenizer } from '@ssd/clip';
import { linear } from '@ssd/kernels';
import { decodePng, StableDiffusionXLPipeline } from '@ssd/pipeline';
import { fixturesDir, maxAbsDiff, repoRoot, testContext } from '../../../testing/index.js';
import { serveStatic } from '../../browser/server/static.js';
import { launch } from '../../browser/test/chromium.js';

const appSource = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['tensor', 'kernels', 'clip', 'unet', 'vae', 'pipeline'];
const tiny = join(fixturesDir, 'models/tiny-ssd1b');
const LONG = 600_000;
/** Quotes, !, $, backticks, a backslash, a newline and non-Latin-1 text: what shells and runners mangle. */
const NASTY = `a "neon" sign: 'it's $5 off!' $HOME $(id) \`id\` \\n 100% & ; | *\n  second line\tend → 猫`;

const root = mkdtempSync(join(tmpdir(), 'ssd-packed-'));
const app = join(root, 'app');
const installed = (pkg: string) => join(app, 'node_modules/@ssd', pkg);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The environment without the npm_* variables pnpm sets for scripts, which would steer `npm install`. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { input?: string } = {}) {
  const r = spawnSync(cmd, args, { cwd: app, encoding: 'utf8', env: cleanEnv, timeout: 280_000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

beforeAll(() => {
  const tarballs = join(root, 'tarballs');
  mkdirSync(tarballs, { recursive: true });
  mkdirSync(app);
  const deps: Record<string, string> = {};
  for (const pkg of PACKAGES) {
    const r = run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(repoRoot, 'packages', pkg), env: process.env });
    expect(r.code, `pnpm pack in packages/${pkg}: ${r.stdout}\n${r.stderr}`).toBe(0);
    const tgz = readdirSync(tarballs).find((f) => f.startsWith(`ssd-${pkg}-`) && f.endsWith('.tgz'));
    expect(tgz, `tarball of @ssd/${pkg}`).toBeDefined();
    deps[`@ssd/${pkg}`] = `file:${join(tarballs, tgz!)}`;
  }
  for (const f of ['generate.mjs', 'index.html', 'main.js']) cpSync(join(appSource, f), join(app, f));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'ssd-npm-app', private: true, type: 'module', dependencies: deps }, null, 2));
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']);
  expect(r.code, `npm install: ${r.stdout}\n${r.stderr}`).toBe(0);
}, LONG);

describe('the packed packages, as npm installed them', () => {
  it('resolve every @ssd dependency to the tarballs, none from the registry', () => {
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string; version?: string }> };
    const ssdEntries = Object.entries(lock.packages).filter(([k]) => /(^|\/)node_modules\/@ssd\//.test(k));
    expect(ssdEntries.map(([k]) => k).sort()).toEqual(PACKAGES.map((p) => `node_modules/@ssd/${p}`).sort());
    for (const [k, v] of ssdEntries) expect(v.resolved, k).toMatch(/^file:.*\.tgz$/);
  });

  for (const pkg of PACKAGES) {
    it(`@ssd/${pkg}: a publishable manifest, imports that resolve inside the package or its dependencies, a README for npm`, () => {
      const dir = installed(pkg);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const text = JSON.stringify(manifest);
      expect(text, 'workspace: versions').not.toMatch(/workspace:/);
      expect(conditions(manifest.exports), 'export conditions').not.toContain('source');
      // publishConfig.exports must follow the workspace's exports (a new subpath needs it there too)
      const workspace = JSON.parse(readFileSync(join(repoRoot, 'packages', pkg, 'package.json'), 'utf8'));
      expect(manifest.exports, 'packed exports = the workspace exports without "source"').toEqual(withoutSource(workspace.exports));
      for (const target of [manifest.main, manifest.types, ...exportTargets(manifest.exports), ...Object.values<string>(manifest.bin ?? {})]) {
        expect(existsSync(join(dir, target)), `${pkg}: ${target}`).toBe(true);
      }
      const declared = new Set([manifest.name, ...Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies, ...manifest.peerDependencies })]);
      const files = walk(dir);
      expect(files.filter((f) => /\.test\.|tsbuildinfo|(^|\/)test\//.test(f)), 'test files or build state').toEqual([]);
      for (const file of files.filter((f) => /\.(js|d\.ts)$/.test(f))) {
        for (const spec of importSpecifiers(readFileSync(join(dir, file), 'utf8'))) {
          if (spec.startsWith('.')) {
            const target = resolve(dirname(join(dir, file)), spec);
            expect(target.startsWith(dir + sep) && existsSync(target), `${pkg}/${file} imports ${spec}`).toBe(true);
          } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
            expect(declared.has(packageName(spec)), `${pkg}/${file} imports ${spec}, which is not among its dependencies`).toBe(true);
          }
        }
      }
      const readme = readFileSync(join(dir, 'README.md'), 'utf8');
      expect(readme.includes(`npm install @ssd/${pkg}`), 'README: the install line').toBe(true);
      expect(new RegExp("```(ts|js)\\n[^`]*from '@ssd/" + pkg + "(/browser)?'").test(readme), 'README: a code example importing the package').toBe(true);
      expect(/\]\(#api\)/.test(readme) && /^## API$/m.test(readme), 'README: a link to its ## API section').toBe(true);
    });
  }

  it('type-check in a strict project without any setup (nodenext, lib checks on)', () => {
    writeFileSync(join(app, 'check.ts'), [
      "import { StableDiffusionXLPipeline, type GenerateResult } from '@ssd/pipeline';",
      "import { CachedUrlSource } from '@ssd/pipeline/browser';",
      "import { createContext, type GpuContext } from '@ssd/tensor';",
      "import { CLIPTokenizer } from '@ssd/clip';",
      "import { UNet2DConditionModel } from '@ssd/unet';",
      "import { AutoencoderKL } from '@ssd/vae';",
      "import { linear } from '@ssd/kernels';",
      'export async function check(): Promise<GenerateResult> {',
      '  const context: GpuContext = await createContext();',
      "  const pipe = await StableDiffusionXLPipeline.fromPretrained(new CachedUrlSource('https://example.com/m'), { context });",
      "  void [CLIPTokenizer, UNet2DConditionModel, AutoencoderKL, linear, context.device.limits.maxBufferSize];",
      "  return pipe.generate({ prompt: 'a cat' });",
      '}',
    ].join('\n'));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2023', 'dom'], types: [], strict: true, noEmit: true, skipLibCheck: false },
      files: ['check.ts'],
    }));
    const r = run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, LONG);
});

describe('the installed packages at work', () => {
  it('generate.mjs: the tiny model through the public API, the same image as the workspace makes', async () => {
    const out = join(app, 'node.png');
    const r = run(process.execPath, ['generate.mjs', tiny, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ seed: 42, out });
    const nodeImage = decodePng(readFileSync(out));
    expect(nodeImage.width).toBe(64);
    const pipe = await StableDiffusionXLPipeline.fromPretrained(tiny, { context: await testContext(), dtype: 'f32', onNotice: () => {} });
    try {
      const ref = await pipe.generate({ prompt: 'a lighthouse on a cliff at dusk', numInferenceSteps: 2, width: 64, height: 64, seed: 42 });
      expect(maxAbsDiff(nodeImage.data, ref.images[0].data)).toBeLessThanOrEqual(1);
    } finally {
      await pipe.dispose();
    }
  }, LONG);

  it('npx ssd generate: a prompt with quotes, !, $ and newlines reaches the PNG parameters unchanged', () => {
    const common = ['--model', tiny, '--steps', '2', '--width', '64', '--height', '64', '--seed', '7'];
    const viaArg = run('npx', ['--no-install', 'ssd', 'generate', '--prompt', NASTY, ...common, '--out', 'arg.png']);
    expect(viaArg.code, viaArg.stderr).toBe(0);
    expect(viaArg.stderr, "Dawn's start-up notes").not.toMatch(/artificially reduced/);
    expect(decodePng(readFileSync(join(app, 'arg.png'))).text.parameters.startsWith(`${NASTY}\nSteps: 2, `)).toBe(true);
    const viaStdin = run('npx', ['--no-install', 'ssd', 'generate', '--prompt-file', '-', ...common, '--out', 'stdin.png'], { input: `${NASTY}\n` });
    expect(viaStdin.code, viaStdin.stderr).toBe(0);
    expect(decodePng(readFileSync(join(app, 'stdin.png'))).text.parameters.startsWith(`${NASTY}\nSteps: 2, `)).toBe(true);
    // the tiny model lives in the repository, not in the package: without --model the CLI says so
    const noModel = run(join(app, 'node_modules/.bin/ssd'), ['generate', '--prompt', 'a cat']);
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/ssd: no --model given and the bundled tiny test model is not installed here/);
  }, LONG);

  it('a browser app bundled by Vite loads the tiny model in headless Chromium, tokenizes and runs a kernel as Node does', async () => {
    const vite = join(repoRoot, 'examples/browser/node_modules/vite/bin/vite.js');
    const built = run(process.execPath, [vite, 'build', '--logLevel', 'warn', '--outDir', 'dist', '--emptyOutDir']);
    expect(built.code, built.stdout + built.stderr).toBe(0);
    const server = await serveStatic({ '/': join(app, 'dist'), '/models/': join(fixturesDir, 'models') });
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${server.url}/`);
      await page.waitForFunction(() => (globalThis as { ssdResult?: unknown }).ssdResult !== undefined, undefined, { timeout: 300_000 });
      const result = (await page.evaluate(() => (globalThis as { ssdResult?: unknown }).ssdResult)) as { ok: boolean; error?: string; ids: number[][]; y: number[] };
      expect(result.ok, `${result.error} ${errors.join('; ')}`).toBe(true);
      // every weight file was read over HTTP (Range requests), as from any model server
      const requested = server.handler.requests.map((r) => r.path);
      for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2']) expect(requested.some((p) => p.startsWith(`/models/tiny-ssd1b/${c}/`) && p.endsWith('.safetensors')), c).toBe(true);
      // the same token ids and kernel output as the workspace's code in Node
      const prompt = 'a lighthouse on a cliff at dusk!';
      const tokenizers = await Promise.all(['tokenizer', 'tokenizer_2'].map((s) => CLIPTokenizer.fromPretrained(tiny, s)));
      expect(result.ids).toEqual(tokenizers.map((t) => t.encode(prompt).ids));
      const ctx = await testContext();
      const x = ctx.fromData(Float32Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i)), [3, 8]);
      const w = ctx.fromData(Float32Array.from({ length: 4 * 8 }, (_, i) => Math.cos(i)), [4, 8]);
      const y = await linear(x, w, { activation: 'gelu' }).read();
      expect(result.y).toHaveLength(12);
      expect(maxAbsDiff(result.y, y)).toBeLessThanOrEqual(1e-4);
    } finally {
      await browser.close();
      await server.close();
    }
  }, LONG);
});

/** Every condition name in an exports map. */
function conditions(exp: unknown): string[] {
  if (!exp || typeof exp !== 'object') return [];
  return Object.entries(exp).flatMap(([k, v]) => [...(k.startsWith('.') ? [] : [k]), ...conditions(v)]);
}

function withoutSource(exp: unknown): unknown {
  if (!exp || typeof exp !== 'object') return exp;
  return Object.fromEntries(Object.entries(exp).filter(([k]) => k !== 'source').map(([k, v]) => [k, withoutSource(v)]));
}

function exportTargets(exp: unknown): string[] {
  if (typeof exp === 'string') return [exp];
  if (!exp || typeof exp !== 'object') return [];
  return Object.values(exp).flatMap(exportTargets);
}

/** Files under dir, relative, '/'-separated, skipping the package's own node_modules. */
function walk(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules') return [];
    return statSync(p).isDirectory() ? walk(p, base) : [relative(base, p).split(sep).join('/')];
  });
}

/** Module specifiers of static imports/exports, literal dynamic imports and reference-types directives. */
function importSpecifiers(code: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'";]*?\sfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /^\/\/\/\s*<reference types="([^"]+)"/gm,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]);
  return out;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}
