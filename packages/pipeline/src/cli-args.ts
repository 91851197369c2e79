// A small argument parser for the `ssd` CLI: `--name value`, `--name=value`, boolean flags and
// positionals, with unknown options reported by name.
import { InvalidArgumentError } from '@ssd/tensor';

export interface ParsedArgs {
  options: Map<string, string | true>;
  /** Every value of a repeatable option, in order. */
  lists: Map<string, string[]>;
  positionals: string[];
}

export function parseArgs(argv: readonly string[], spec: { values: readonly string[]; flags: readonly string[]; repeatable?: readonly string[] }): ParsedArgs {
  const options = new Map<string, string | true>();
  const lists = new Map<string, string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (spec.flags.includes(name)) {
      if (eq >= 0) throw new InvalidArgumentError(`--${name} takes no value`);
      options.set(name, true);
    } else if (spec.values.includes(name) || spec.repeatable?.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new InvalidArgumentError(`--${name} needs a value`);
      if (spec.repeatable?.includes(name)) lists.set(name, [...(lists.get(name) ?? []), v]);
      else options.set(name, v);
    } else {
      throw new InvalidArgumentError(`unknown option --${name} (see \`ssd help\`)`);
    }
  }
  return { options, lists, positionals };
}

export function num(args: ParsedArgs, name: string, kind: 'int' | 'float'): number | undefined {
  const v = args.options.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || v.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`--${name} ${v === true ? '' : JSON.stringify(v)}: must be ${kind === 'int' ? 'an integer' : 'a number'}`);
  }
  return n;
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  return v === true ? undefined : v;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** A byte count such as `3GB` (decimal), `2.5GiB` (binary), `1600MB` or `3000000000`; undefined when absent. */
export function bytesArg(args: ParsedArgs, name: string): number | undefined {
  const v = args.options.get(name);
  if (v === undefined) return undefined;
  const m = v === true ? null : /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmg]i?b|b)?\s*$/i.exec(v);
  const bytes = m ? Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()] : NaN;
  if (!m || !(bytes >= 1)) throw new InvalidArgumentError(`--${name} ${v === true ? '' : JSON.stringify(v)}: must be a size such as 3GB, 2.5GiB, 1600MB or a number of bytes`);
  return Math.floor(bytes);
}
