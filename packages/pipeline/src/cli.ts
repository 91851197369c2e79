#!/usr/bin/env node
// The `ssd` command line: `ssd info` (adapter, features, limits, and a smoke kernel).
import { add, createContext, SsdError } from '@ssd/tensor';

const HELP = `usage: ssd <command> [options]

commands:
  info        print the WebGPU adapter, its features and limits, and run a smoke kernel
  help        this text
`;

async function info(): Promise<void> {
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

async function main(argv: string[]): Promise<void> {
  const [cmd = 'help'] = argv;
  switch (cmd) {
    case 'info':
      return info();
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return;
    default:
      console.error(`ssd: unknown command "${cmd}"\n${HELP}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof SsdError) console.error(`ssd: ${e.message}`);
  else console.error(e);
  process.exitCode = 1;
});
