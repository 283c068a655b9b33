/** The bench's command line (commander), with bounds on everything that costs time. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseArgs } from '../lab/args';
import * as path from 'node:path';
import { DEFAULT_PEERS_DIR } from './peers';
import { SCENARIOS, withTwins } from './scenarios';

export interface Options {
  /** Load seconds of each run. */
  seconds: number;
  /** Seconds of the same load before each measured one (0: none), for both pairs: the JIT and caches warm up. */
  warmup: number;
  /** Repetitions per scenario (each runs both pairs). */
  runs: number;
  scenarios: number[];
  profile: boolean;
  /** The scenario the profiled run repeats (default 4, keep-alive at maximum rate). */
  profileScenario: number;
  /** Run our daemons from a copy of dist/ taken at the start (default true). */
  snapshot: boolean;
  /** Wait before each run until other processes use less than this % of the CPUs … */
  quietPct: number;
  /** … for at most this many seconds. */
  quietWait: number;
  /** Only regenerate docs/benchmarks.{md,svg} from this results file (no runs, no root needed). */
  render?: string;
  /** Where benchmarks.md and .svg go (default docs/). */
  out?: string;
  /** Extra arguments for our tcpcopy in every run (`{dev}` = the online host's veth). */
  tcpcopyArgs?: string[];
  /** Flags for node in front of our daemons (all our pairs), e.g. --trace-gc or --require a profiler. */
  nodeArgs?: string[];
  /** Also run our pair with its older engines (raw socket or libpcap capture, one sendto per packet) in every repetition. */
  legacy: boolean;
  /** An earlier revision of ours to run as a pair in every repetition instead of the older engines (`--baseline`). */
  baseline?: string;
  /** The original C programs' source (tcpcopy/, intercept/), or false: ours alone. */
  peers: string | false;
  /** Where the originals are built and cached (never inside the project). */
  peersBuildDir?: string;
}

function int(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer in [${min}, ${max}]`);
    return n;
  };
}

function scenarioList(v: string): number[] {
  const ids = v.split(',').map((s) => s.trim()).filter(Boolean).map(int(1, SCENARIOS.length));
  if (!ids.length) throw new InvalidArgumentError('needs at least one number, e.g. 1,4');
  // An IPv6 scenario is judged beside its IPv4 twin of the same run: it always brings it.
  return withTwins(ids);
}

export function buildCommand(): Command {
  const env = process.env.TCPCOPY_PEERS;
  return new Command('bench')
    .description('Benchmarks our tcpcopy + intercept and the original C pair in a network-namespace lab with nginx and wrk, ' +
      'and writes bench/results/<date>.json, docs/benchmarks.md and docs/benchmarks.svg. Root only.')
    .usage('[options]   (npm run bench -- [options] does the set-up first)')
    .addOption(new Option('-d, --duration <seconds>', 'load duration of each run').argParser(int(1, 600)).default(10))
    .addOption(new Option('--seconds <seconds>', 'the same as --duration').argParser(int(1, 600)).hideHelp())
    .addOption(new Option('--warmup <seconds>', 'before each measured load, the same load for this long, not measured (0: none)')
      .argParser(int(0, 120)).default(10))
    .addOption(new Option('--runs <n>', 'repetitions per scenario; each runs both pairs, alternating which goes first')
      .argParser(int(1, 50)).default(3))
    .addOption(new Option('--scenarios <list>', 'which scenarios, e.g. 1,4 (default all); an IPv6 one brings its IPv4 twin')
      .argParser(scenarioList))
    .addOption(new Option('--peers <dir>', 'source of the original C tcpcopy and intercept, built in a temporary directory ' +
      '(env TCPCOPY_PEERS)').default(env || DEFAULT_PEERS_DIR, env ? '$TCPCOPY_PEERS' : '../shared/peers'))
    .option('--no-peers', 'run our pair alone (the report then says the comparison is missing)')
    .addOption(new Option('--peers-build-dir <dir>', 'where the originals are built and cached per source hash').default(undefined, 'the system temp directory'))
    .option('--profile', 'afterwards, one extra run of scenario 4 with our tcpcopy under node --cpu-prof')
    .addOption(new Option('--profile-scenario <n>', 'the same with scenario N').argParser(int(1, SCENARIOS.length)))
    .addOption(new Option('--quiet-wait <seconds>', 'before each run, wait up to this long while other processes use more ' +
      'than --quiet-pct % of the CPUs (at most 90 s in all)').argParser(int(0, 3600)).default(20))
    .addOption(new Option('--quiet-pct <pct>', 'see --quiet-wait').argParser(int(1, 100)).default(5))
    .option('--no-legacy', 'do not run the third pair, ours with the older engines (--capture-engine legacy --send-engine legacy)')
    .option('--baseline <rev>', 'run an earlier build of ours (a git revision, built in a temporary worktree) as the third pair ' +
      'instead of the older engines, and report this build ÷ that one (same run)')
    .option('--no-snapshot', 'run our daemons straight from dist/ (default: from a copy taken at the start)')
    .option('--tcpcopy-args <args>', 'extra arguments for our tcpcopy in every run ({dev} = the online veth), e.g. "-i {dev}"')
    .option('--node-args <flags>', 'flags for node itself in front of our daemons in every run (logs in the bed\'s work ' +
      'directory; TESTBED_KEEP=1 keeps it), e.g. "--trace-gc" or "--require /path/profiler.js"')
    .option('--render <file>', 'only regenerate docs/benchmarks.md and .svg from a results file (no runs, no root)')
    .option('--out <dir>', 'write benchmarks.md and .svg into this directory instead of docs/')
    .addHelpText('after', '\nscenarios:\n' + SCENARIOS.map((s) => `  ${s.id}  ${s.title}`).join('\n') +
      '\n\nA quick comparison of one scenario with both pairs: --scenarios 4 --runs 1 --duration 5');
}

export function parseOptions(argv: readonly string[]): Options {
  const cmd = buildCommand().configureOutput({ writeErr: () => undefined });
  parseArgs(cmd, argv, (msg) => {
    process.stderr.write(`bench: ${msg} (see --help)\n`);
    process.exit(2);
  });
  const v = cmd.opts<{
    duration: number; seconds?: number; warmup: number; runs: number; scenarios?: number[]; peers: string | false; peersBuildDir?: string;
    profile?: boolean; profileScenario?: number; quietWait: number; quietPct: number; snapshot: boolean;
    tcpcopyArgs?: string; nodeArgs?: string; render?: string; out?: string; legacy: boolean; baseline?: string;
  }>();
  return {
    seconds: v.seconds ?? v.duration,
    warmup: v.warmup,
    runs: v.runs,
    scenarios: v.scenarios ?? SCENARIOS.map((s) => s.id),
    profile: Boolean(v.profile || v.profileScenario),
    profileScenario: v.profileScenario ?? 4,
    snapshot: v.snapshot,
    quietPct: v.quietPct,
    quietWait: v.quietWait,
    render: v.render,
    out: v.out ? path.resolve(v.out) : undefined,
    tcpcopyArgs: v.tcpcopyArgs?.split(' ').filter(Boolean),
    nodeArgs: v.nodeArgs?.split(' ').filter(Boolean),
    legacy: v.legacy && !v.baseline,
    baseline: v.baseline,
    peers: v.peers === false ? false : path.resolve(v.peers),
    peersBuildDir: v.peersBuildDir,
  };
}
