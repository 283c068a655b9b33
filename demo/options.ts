/** The demo's command line (commander). Bad arguments: one line, exit status 2. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseArgs } from '../lab/args';

export interface Options {
  durationS: number;
  rate: number;
  copies: number;
  keep: boolean;
  json: boolean;
}

function number(min: number, max: number, integer: boolean): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new InvalidArgumentError(`takes ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`);
    }
    return n;
  };
}

export function buildCommand(): Command {
  return new Command('demo')
    .usage('[options]      (npm run demo -- [options], or node dist/demo/demo.js [options], as root)')
    .description('Builds four "machines" in network namespaces (clients, online server, target server, ' +
      'assistant server), runs intercept and tcpcopy on them as you would on real machines, ' +
      'sends live HTTP traffic to the online server and shows how much of it the target received.')
    .addOption(new Option('--duration <s>', 'how long the load runs, in seconds').argParser(number(1, 3600, false)).default(20))
    .addOption(new Option('--rate <req/s>', 'total request rate, split between short and keep-alive connections')
      .argParser(number(1, 100_000, true)).default(400))
    .addOption(new Option('-n, --copies <n>', 'replay every session n times (tcpcopy -n); the target then gets n x online')
      .argParser(number(1, 1023, true)).default(1))
    .option('--keep', 'leave the namespaces, servers and daemons running and print how to explore them and how to tear them down')
    .option('--json', 'print the final report as one JSON line on stdout (the rest goes to stderr)')
    .addHelpText('after', '\nexit status: 0 when at most 0.1 % of the requests were lost, 1 otherwise, 2 on bad arguments, 130 on Ctrl-C.');
}

/** Parses the arguments; prints help and exits 0 for -h, one line and exits 2 for bad ones. */
export function parseOptions(argv: readonly string[]): Options {
  const cmd = buildCommand().configureOutput({ writeErr: () => undefined });
  parseArgs(cmd, argv, (msg) => {
    process.stderr.write(`demo: ${msg}\n(run 'npm run demo -- --help' for every option)\n`);
    process.exit(2);
  });
  const v = cmd.opts<{ duration: number; rate: number; copies: number; keep?: boolean; json?: boolean }>();
  return { durationS: v.duration, rate: v.rate, copies: v.copies, keep: !!v.keep, json: !!v.json };
}
