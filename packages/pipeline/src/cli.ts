#!/usr/bin/env node
// The `ssd` command line: generate (text-to-image and img2img), convert, quantize, tokenize, info. Each
// command lives in its own cli-<command>.ts; this file dispatches and turns errors into one line on
// stderr with a distinct exit code per error class (see docs/errors.md).
import {
  AbortError, ConfigError, DeviceLimitError, DeviceLostError, GpuError, InvalidArgumentError, KernelCompileError, ModelLoadError, NumericalError, SsdError,
} from '@ssd/tensor';
import { generate, GENERATE_HELP } from './cli-generate.js';
import { info, tokenize, TOKENIZE_HELP } from './cli-commands.js';
import { convert, CONVERT_HELP } from './cli-convert.js';
import { runWithQuietDawn } from './dawn-output.js';
import { quantize, QUANTIZE_HELP } from './cli-quantize.js';

const HELP = `usage: ssd <command> [options]

commands:
  generate    make an image (text-to-image, or img2img with --init-image)
  convert     single-file checkpoint ⇄ diffusers folder
  quantize    a folder or single file → one GGUF file (q8_0, q5_0, q4_0, q4_K, …), as sd.cpp's -M convert
  tokenize    print the 77 token ids of a prompt as JSON
  info        print the WebGPU adapter, its features and limits, and run a smoke kernel
  help        this text

${GENERATE_HELP}${CONVERT_HELP}${QUANTIZE_HELP}${TOKENIZE_HELP}`;

/** Exit codes per error class (docs/errors.md). */
export function exitCode(e: unknown): number {
  if (e instanceof AbortError) return 130;
  if (e instanceof InvalidArgumentError) return 2;
  if (e instanceof ConfigError) return 3;
  if (e instanceof ModelLoadError) return 4;
  if (e instanceof DeviceLimitError) return 5;
  if (e instanceof DeviceLostError) return 6;
  if (e instanceof NumericalError) return 7;
  if (e instanceof GpuError || e instanceof KernelCompileError) return 8;
  return 1;
}

async function main(argv: string[]): Promise<void> {
  if (await runWithQuietDawn(argv, ['generate', 'info'])) return; // in a child without Dawn's notes, unless --verbose (dawn-output.ts)
  const [cmd = 'help', ...rest] = argv;
  switch (cmd) {
    case 'generate':
      return generate(rest);
    case 'convert':
      return convert(rest);
    case 'quantize':
      return quantize(rest);
    case 'tokenize':
      return tokenize(rest);
    case 'info':
      return info();
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return;
    default:
      throw new InvalidArgumentError(`unknown command "${cmd}" (commands: generate, convert, quantize, tokenize, info, help)`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const msg = e instanceof SsdError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  console.error(`ssd: ${msg.split('\n').join('\n     ')}`);
  process.exitCode = exitCode(e);
});
