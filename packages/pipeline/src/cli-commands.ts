// `ssd tokenize` (the 77 token ids of a prompt) and `ssd info` (the adapter, its features and limits,
// and a smoke kernel).
import { createContext, InvalidArgumentError } from '@ssd/tensor';
import { add } from '@ssd/kernels';
import { CLIPTokenizer } from '@ssd/clip';
import { parseArgs, str } from './cli-args.js';
import { bundledModel } from './cli-generate.js';

export const TOKENIZE_HELP = `ssd tokenize --model <dir> [--which 1|2] <text>
`;

export async function tokenize(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'which'], flags: [] });
  const model = str(args, 'model') ?? bundledModel();
  if (!model) throw new InvalidArgumentError('--model is required');
  const which = str(args, 'which') ?? '1';
  if (which !== '1' && which !== '2') throw new InvalidArgumentError(`--which ${JSON.stringify(which)}: use 1 or 2`);
  if (!args.positionals.length) throw new InvalidArgumentError('give the text to tokenize');
  const tok = await CLIPTokenizer.fromPretrained(model, which === '1' ? 'tokenizer' : 'tokenizer_2');
  const e = tok.encode(args.positionals.join(' '));
  console.log(JSON.stringify(e.ids));
  if (e.truncatedTokens) console.error(`note: ${e.truncatedTokens} tokens were cut off at 77`);
}

export async function info(): Promise<void> {
  const ctx = await createContext();
  const i = ctx.info;
  console.log(`adapter:  ${i.description} (${i.vendor}/${i.architecture}${i.device ? '/' + i.device : ''}, ${i.runtime})`);
  console.log(`features: ${i.features.join(', ')}`);
  if (i.disabledFeatures.length) console.log(`disabled: ${i.disabledFeatures.join(', ')}`);
  if (i.subgroupMinSize) console.log(`subgroups: ${i.subgroupMinSize}–${i.subgroupMaxSize}`);
  console.log('limits:');
  for (const [k, v] of Object.entries(i.limits)) console.log(`  ${k.padEnd(36)} ${v.toLocaleString('en-US')}`);
  const n = 1 << 20;
  const a = ctx.fromData(Float32Array.from({ length: n }, (_, k) => k), [n]);
  const b = ctx.fromData(Float32Array.from({ length: n }, (_, k) => 2 * k), [n]);
  const t0 = performance.now();
  const c = await add(a, b).read();
  let bad = 0;
  for (let k = 0; k < n; k++) if (c[k] !== 3 * k) bad++;
  console.log(`smoke:    add of 2×${n.toLocaleString('en-US')} floats: ${bad === 0 ? 'correct' : `${bad} WRONG`} (${(performance.now() - t0).toFixed(1)} ms)`);
  ctx.destroy();
  if (bad) process.exitCode = 1;
}
