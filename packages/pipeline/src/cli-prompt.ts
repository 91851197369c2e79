// The `ssd generate` prompts: --prompt / --negative, or --prompt-file / --negative-prompt-file <path|->
// read verbatim from a file or stdin, so that quotes, `!`, `$` and newlines reach the model (and the
// PNG's parameters) unchanged, whatever shell or script runner sits in between.
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@ssd/tensor';
import { str, type ParsedArgs } from './cli-args.js';

/** The value options this module reads, for parseArgs. */
export const PROMPT_FILE_OPTIONS = ['prompt-file', 'negative-prompt-file'] as const;

export interface CliPrompts {
  prompt: string;
  negativePrompt: string | undefined;
}

/** Where stdin comes from; a parameter so tests can feed it. */
export type StdinReader = () => Promise<Uint8Array>;

/**
 * --prompt or --prompt-file (one is required), --negative or --negative-prompt-file (optional). A file
 * is taken byte for byte as UTF-8 except for two things editors and `echo` add: a leading byte-order
 * mark and one final line break ("\n" or "\r\n") are dropped. Inner and other trailing whitespace,
 * further blank lines and every other character are kept. `-` reads stdin (for one of the two only).
 */
export async function readCliPrompts(args: ParsedArgs, readStdin: StdinReader = readProcessStdin): Promise<CliPrompts> {
  const promptFile = str(args, 'prompt-file');
  const negativeFile = str(args, 'negative-prompt-file');
  if (promptFile === '-' && negativeFile === '-') {
    throw new InvalidArgumentError('--prompt-file - and --negative-prompt-file - cannot both read stdin: give one of them a file');
  }
  const prompt = await oneOf(args, 'prompt', 'prompt-file', readStdin);
  if (prompt === undefined) throw new InvalidArgumentError('--prompt is required (or --prompt-file <path|->, see ssd help)');
  return { prompt, negativePrompt: await oneOf(args, 'negative', 'negative-prompt-file', readStdin) };
}

async function oneOf(args: ParsedArgs, textOption: string, fileOption: string, readStdin: StdinReader): Promise<string | undefined> {
  const text = args.options.get(textOption);
  const file = args.options.get(fileOption);
  if (text !== undefined && file !== undefined) throw new InvalidArgumentError(`give --${textOption} or --${fileOption}, not both`);
  if (file === true) throw new InvalidArgumentError(`--${fileOption} needs a path, or - for stdin`);
  if (file === undefined) return str(args, textOption);
  let bytes: Uint8Array;
  try {
    bytes = file === '-' ? await readStdin() : new Uint8Array(await readFile(file));
  } catch (e) {
    throw new InvalidArgumentError(`--${fileOption} ${file}: cannot read it (${(e as Error).message})`);
  }
  return promptFromBytes(bytes, `--${fileOption} ${file === '-' ? '- (stdin)' : file}`);
}

/** UTF-8 bytes → the prompt: fatal decoding, then the BOM and one final line break dropped (see above). */
export function promptFromBytes(bytes: Uint8Array, what: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidArgumentError(`${what}: not valid UTF-8 text; save the prompt as UTF-8`);
  }
  return text.replace(/\r?\n$/, '');
}

async function readProcessStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY) console.error('reading the prompt from stdin: type it, then Ctrl-D');
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array);
  return new Uint8Array(Buffer.concat(chunks));
}
