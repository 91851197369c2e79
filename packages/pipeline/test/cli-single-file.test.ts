// `ssd generate --model file.safetensors` and `ssd convert` both ways on the fixture SGM checkpoint:
// the folder it writes holds the same tensors, the single file written back is byte-identical to
// diffusers' own conversion, and generating from the file equals generating from the folder.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { fixturesDir, hasFixtures, repoRoot } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const tmp = mkdtempSync(join(tmpdir(), 'ssd-cli-sf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 240_000,
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stderr: r.stderr };
}

async function latents(path: string): Promise<number[]> {
  const st = await SafetensorsFile.open(new NodeFileSource(path));
  try {
    return [...(await st.readFloat32('latents'))];
  } finally {
    await st.source.close();
  }
}

describe.skipIf(!hasFixtures(FILE))('ssd with single-file checkpoints', () => {
  it('convert → folder → single file is byte-identical; generate from the file = from the folder', async () => {
    const file = join(fixturesDir, FILE);
    const folder = join(tmp, 'folder');
    let r = ssd('convert', '--from', file, '--to', folder, '--variant', 'fp16', '--quiet');
    expect(r.code, r.stderr).toBe(0);
    const back = join(tmp, 'back.safetensors');
    r = ssd('convert', '--from', folder, '--source-variant', 'fp16', '--to-single-file', back, '--quiet');
    expect(r.code, r.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(back), readFileSync(file))).toBe(0);
    const gen = (model: string, out: string) => ssd('generate', '--model', model, '--prompt', 'a cube', '--steps', '2', '--width', '64', '--height', '64', '--seed', '5', '--dtype', 'f32', '--variant', 'fp16', '--out', join(tmp, `${out}.png`), '--out-latents', join(tmp, `${out}.safetensors`), '--quiet');
    r = gen(file, 'from-file');
    expect(r.code, r.stderr).toBe(0);
    r = gen(folder, 'from-folder');
    expect(r.code, r.stderr).toBe(0);
    expect(await latents(join(tmp, 'from-file.safetensors'))).toEqual(await latents(join(tmp, 'from-folder.safetensors')));
  });

  it('refuses a second conversion into a pipeline folder and a file that is not a checkpoint', () => {
    let r = ssd('convert', '--from', join(fixturesDir, FILE), '--to', join(fixturesDir, 'models/tiny-ssd1b'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already holds a pipeline/);
    r = ssd('convert', '--from', join(fixturesDir, 'models/tiny-ssd1b'), '--variant', 'fp16', '--to-single-file', join(tmp, 'x.safetensors'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--variant names the files of a written folder .*--source-variant fp16/);
    r = ssd('generate', '--model', join(fixturesDir, 'models/tiny-ssd1b/model_index.json'), '--prompt', 'x');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is a file but not a \.safetensors or \.gguf checkpoint/);
  });
});
