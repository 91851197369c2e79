// `ssd generate --prompt-file <path|->` reads the prompt verbatim (quotes, !, $, newlines reach the PNG's
// parameters unchanged), and the CLI hides Dawn's start-up notes unless --verbose / SSD_VERBOSE=1. The
// CLI runs are of the built packages/pipeline/dist/cli.js (pnpm test builds first), as users run it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodePng } from '@ssd/pipeline';
import { parseArgs } from '../src/cli-args.js';
import { PROMPT_FILE_OPTIONS, readCliPrompts } from '../src/cli-prompt.js';
import { DawnNoteFilter, wantsVerbose } from '../src/dawn-output.js';
import { fixturesDir, repoRoot } from '../../../testing/index.js';

const cli = join(repoRoot, 'packages/pipeline/dist/cli.js');
const tiny = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-cli-prompt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What shells, npm scripts and editors tend to mangle. */
const NASTY = `a "double" and 'single' quoted cat!! wait... really?! costs $HOME $(ls) \`id\` \\n & ; | * ~\n  second line  \t\nthird → 猫`;

function ssd(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: tmp, encoding: 'utf8', input: opts.input ?? '', env: { ...process.env, NODE_NO_WARNINGS: '1', ...opts.env }, timeout: 240_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const noteLines = (s: string) => s.split('\n').filter((l) => / artificially reduced from \d+ to \d+/.test(l));
const parameters = (png: string) => decodePng(readFileSync(png)).text.parameters;
const prompts = (argv: string[], stdin = '') =>
  readCliPrompts(parseArgs(argv, { values: ['prompt', 'negative', ...PROMPT_FILE_OPTIONS], flags: [] }), async () => new TextEncoder().encode(stdin));

describe('--prompt-file and --negative-prompt-file', () => {
  it('read files and stdin verbatim, dropping only a byte-order mark and one final line break', async () => {
    const f = join(tmp, 'p.txt');
    writeFileSync(f, `\ufeff${NASTY}\r\n`);
    expect(await prompts(['--prompt-file', f])).toEqual({ prompt: NASTY, negativePrompt: undefined });
    writeFileSync(f, `  ${NASTY}\n\n`);
    expect((await prompts(['--prompt-file', f])).prompt).toBe(`  ${NASTY}\n`);
    expect(await prompts(['--prompt', 'x', '--negative-prompt-file', '-'], `${NASTY}\n`)).toEqual({ prompt: 'x', negativePrompt: NASTY });
    expect((await prompts(['--prompt-file', '-'], '')).prompt).toBe('');
  });

  it('refuse contradictory, missing and undecodable input with an InvalidArgumentError', async () => {
    const bad = join(tmp, 'latin1.txt');
    writeFileSync(bad, Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    const cases: [string[], RegExp][] = [
      [['--prompt', 'a', '--prompt-file', bad], /give --prompt or --prompt-file, not both/],
      [['--prompt-file', '-', '--negative-prompt-file', '-'], /cannot both read stdin/],
      [['--prompt-file', join(tmp, 'nope.txt')], /--prompt-file .*nope\.txt: cannot read it \(ENOENT/],
      [['--prompt-file', bad], /latin1\.txt: not valid UTF-8 text/],
      [['--negative', 'x'], /--prompt is required \(or --prompt-file <path\|->/],
    ];
    for (const [argv, message] of cases) await expect(prompts(argv), argv.join(' ')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it('ssd generate: the prompt from stdin and the negative from a file reach the PNG parameters unchanged', () => {
    const neg = join(tmp, 'negative.txt');
    writeFileSync(neg, 'blurry, "low quality" $PATH!\n');
    const out = join(tmp, 'stdin.png');
    const r = ssd(['generate', '--model', tiny, '--prompt-file', '-', '--negative-prompt-file', neg, '--steps', '2', '--width', '64', '--height', '64', '--seed', '7', '--out', out], { input: `${NASTY}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(parameters(out)).toMatch(new RegExp(`^${escape(NASTY)}\nNegative prompt: blurry, "low quality" \\$PATH!\nSteps: 2, `));
  });

  it('ssd generate: the same prompt given as one --prompt argument (no shell in between) arrives the same', () => {
    const out = join(tmp, 'arg.png');
    const r = ssd(['generate', '--model', tiny, '--prompt', NASTY, '--steps', '2', '--width', '64', '--height', '64', '--seed', '7', '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(parameters(out).startsWith(`${NASTY}\nSteps: 2, `)).toBe(true);
  });
});

describe("Dawn's start-up notes", () => {
  // What Dawn itself prints on this adapter, without our CLI in between (lavapipe: two lines)
  const raw = spawnSync(process.execPath, ['-e', "const {create}=require('webgpu');create([]).requestAdapter().then((a)=>console.log(!!a))"], {
    cwd: join(repoRoot, 'packages/tensor'), encoding: 'utf8',
  });
  const dawnNotes = noteLines(raw.stderr);

  it('are hidden from `ssd info` and `ssd generate` by default, with exit codes kept', () => {
    expect(raw.stdout.trim()).toBe('true');
    const info = ssd(['info']);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/^adapter: /);
    expect(noteLines(info.stderr)).toEqual([]);
    const failed = ssd(['generate', '--model', tiny, '--prompt', 'x', '--steps', '0']);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('ssd: numInferenceSteps = 0');
    expect(noteLines(failed.stderr)).toEqual([]);
  });

  it('are shown with --verbose or SSD_VERBOSE=1, exactly as Dawn prints them', () => {
    expect(noteLines(ssd(['info', '--verbose']).stderr)).toEqual(dawnNotes);
    expect(noteLines(ssd(['info'], { env: { SSD_VERBOSE: '1' } }).stderr)).toEqual(dawnNotes);
    expect(wantsVerbose(['generate', '--', '--verbose'], {})).toBe(false);
    expect(wantsVerbose(['info'], { SSD_VERBOSE: '0' })).toBe(false);
  });

  it.skipIf(process.platform !== 'linux')('keep the progress bar redrawing in place on a terminal (script(1) gives a pty)', () => {
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} generate --model ${JSON.stringify(tiny)} --prompt cat --steps 2 --width 64 --height 64 --out ${JSON.stringify(join(tmp, 'tty.png'))}`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: tmp, encoding: 'utf8', timeout: 240_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('\r\x1b[2Kdenoising [');
    expect(noteLines(r.stdout)).toEqual([]);
  });

  it('DawnNoteFilter drops whole note lines, however the stream is cut, and passes everything else at once', () => {
    const note = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
    const text = `note: using the tiny model\n${note}\r\x1b[2Kloading unet [####] 1/2 MiB${note}Warning: something else\n\r\x1b[2Kdone\n`;
    const want = 'note: using the tiny model\n\r\x1b[2Kloading unet [####] 1/2 MiBWarning: something else\n\r\x1b[2Kdone\n';
    for (const size of [1, 3, 7, 50, text.length]) {
      let out = '';
      const f = new DawnNoteFilter((s) => (out += s));
      for (let i = 0; i < text.length; i += size) f.write(text.slice(i, i + size));
      f.end();
      expect(out, `chunks of ${size}`).toBe(want);
    }
    // a partial progress line goes out before its newline
    let out = '';
    new DawnNoteFilter((s) => (out += s)).write('\r\x1b[2Kdenoising [#...] 1/4');
    expect(out).toBe('\r\x1b[2Kdenoising [#...] 1/4');
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
