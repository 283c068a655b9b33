/**
 * Man pages tcpcopy(1) and intercept(1), written from the commander definitions (so the
 * OPTIONS and METRICS sections cannot drift from `-h` and the endpoint) plus the fixed
 * sections below. `scripts/man.js` writes them to man/ (build output) at every build, set-up
 * and `npm pack`.
 */
import type { Command, Option } from 'commander';
import { VERSION } from './common';
import { tcpcopyProgram } from './tcpcopy';
import { interceptProgram } from './intercept';
import { metricDefsFor, PROCESS_METRICS } from '../daemon/metric-defs';

/** Escapes text for roff: backslashes, hyphens of flags, and a leading dot or quote. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** Paragraphs of plain text; `$ command` lines become indented literal blocks. */
function paragraphs(text: string): string {
  const out: string[] = [];
  for (const block of text.trim().split(/\n\s*\n/)) {
    const lines = block.split('\n');
    if (lines.every((l) => l.startsWith('$ '))) {
      out.push('.PP\n.RS 4\n.nf', ...lines.map((l) => roff(l.slice(2))), '.fi\n.RE');
    } else {
      out.push('.PP', roff(lines.join(' ')));
    }
  }
  return out.join('\n');
}

interface PageText {
  summary: string;
  description: string;
  examples: string;
  files: string;
  seeAlso: string[];
}

const SIGNALS = `SIGTERM, SIGINT: stop (sessions are reset, the control connections closed), write the summary line, exit 0.

SIGHUP: reopen the log file (for log rotation).`;

const ENVIRONMENT = `TCPCOPY_LOG_LEVEL: the log level when --log-level is not given.

TCPCOPY_SECRET: the control-channel shared secret when --secret is not given.`;

const EXIT_STATUS = `0: stopped by SIGTERM or SIGINT; -h or -v; offline replay complete; -d once the background copy runs.

1: bad command line, or a start-up failure (one line on stderr says which: a port in use, a missing device, a refused capture...); tcpcopy also exits 1 when it lost every intercept for 5 s without -L or could not hold the -m limit.

70: an unexpected internal error (logged as "uncaught exception").`;

const TEXT: Record<'tcpcopy' | 'intercept', PageText> = {
  tcpcopy: {
    summary: 'copy live TCP traffic to a target server',
    description: `tcpcopy runs on the online server. It captures the TCP packets that clients send to the ports named by -x, rewrites them to the target server and sends them there as valid TCP sessions: it makes its own handshakes, acknowledges the target's replies and paces each request on the target's responses. The target's replies are routed to the assistant server, where intercept(1) captures them and streams their headers back to tcpcopy over the control channel (TCP port 36524), so the target's responses never reach the real clients.

Capture is a raw socket by default, libpcap with -i devices, or a pcap/pcapng file replayed offline when -i names a file.

With --metrics, tcpcopy serves its counters over HTTP: GET /metrics in the Prometheus text format, GET /stats as JSON. The log is pino's JSON lines in files and a readable line on a terminal (--log-format).`,
    examples: `Copy port 80 of this server to port 8080 of 10.0.0.2, intercept on 10.0.0.3, in the background:

$ tcpcopy -x 80-10.0.0.2:8080 -s 10.0.0.3 -d -P /run/tcpcopy.pid

Replay a capture file twice as fast, with Prometheus metrics on 127.0.0.1:9100:

$ tcpcopy -i traffic.pcap -a 2 -x 80-10.0.0.2:8080 -s 10.0.0.3 --metrics 9100`,
    files: '/var/log/tcpcopy.log: the log with -d and no -l. /run/tcpcopy.pid: a usual -P path. The systemd unit packaging/systemd/tcpcopy.service in the package shows a supervised set-up.',
    seeAlso: ['intercept(1)', 'pcap-filter(7)', 'tcpdump(8)'],
  },
  intercept: {
    summary: "capture a target server's replies for tcpcopy",
    description: `intercept runs on the assistant server, to which the target server routes its replies to the replayed clients. It captures those replies with libpcap (-i, -F) and streams their headers to the tcpcopy(1) that registered each client address, over the control channel (TCP port 36524 by default). The replies themselves go no further.

With --metrics, intercept serves its counters over HTTP: GET /metrics in the Prometheus text format, GET /stats as JSON. The log is pino's JSON lines in files and a readable line on a terminal (--log-format).`,
    examples: `Capture the replies of a target listening on port 8080, in the background:

$ intercept -i eth0 -F 'tcp and src port 8080' -d -P /run/intercept.pid

The same, with Prometheus metrics on 127.0.0.1:9101:

$ intercept -i eth0 -F 'tcp and src port 8080' --metrics 9101`,
    files: '/var/log/intercept.log: the log with -d and no -l. /run/intercept.pid: a usual -P path. The systemd unit packaging/systemd/intercept.service in the package shows a supervised set-up.',
    seeAlso: ['tcpcopy(1)', 'pcap-filter(7)'],
  },
};

function optionItem(o: Option): string {
  let desc = o.description ?? '';
  const d = o.defaultValue;
  if ((typeof d === 'number' || typeof d === 'string') && !o.negate) desc += ` (default: ${d})`;
  return `.TP\n.B ${roff(o.flags)}\n${roff(desc)}`;
}

/** The whole page, in the man(7) macros. */
export function manPage(name: 'tcpcopy' | 'intercept', program: Command): string {
  const t = TEXT[name];
  const help = program.createHelp();
  const options = help.visibleOptions(program);
  const metrics = [...metricDefsFor(name).map((d) => `${d.name}${d.labels ? `{${d.labels.join(',')}}` : ''}: ${d.help}`),
    ...PROCESS_METRICS.map((m) => `${m}: the process's ${m === 'process_cpu_seconds_total' ? 'CPU time' : m === 'process_resident_memory_bytes' ? 'resident memory' : 'start time'}.`),
    `${name}_build_info{version,nodejs}: always 1.`];
  return [
    `.\\" Generated by scripts/man.js from the commander definitions in src/cli/${name}.ts; do not edit.`,
    `.TH ${name.toUpperCase()} 1 "" "${name} ${VERSION}" "User Commands"`,
    '.SH NAME',
    `${name} \\- ${roff(t.summary)}`,
    '.SH SYNOPSIS',
    `.B ${name}`,
    '[\\fIOPTIONS\\fR]',
    '.SH DESCRIPTION',
    paragraphs(t.description),
    '.SH OPTIONS',
    ...options.map(optionItem),
    '.SH METRICS',
    paragraphs(`With --metrics [host:]port, GET /metrics serves these (Prometheus text format; counters since start):\n\n${metrics.join('\n\n')}`),
    '.SH EXAMPLES',
    paragraphs(t.examples),
    '.SH SIGNALS',
    paragraphs(SIGNALS),
    '.SH ENVIRONMENT',
    paragraphs(ENVIRONMENT),
    '.SH FILES',
    paragraphs(t.files),
    '.SH EXIT STATUS',
    paragraphs(EXIT_STATUS),
    '.SH SEE ALSO',
    ...t.seeAlso.map((ref, i) => {
      const m = /^(.+)\((\d)\)$/.exec(ref)!;
      return `.BR ${roff(m[1])} (${m[2]})${i < t.seeAlso.length - 1 ? ',' : ''}`;
    }),
    '',
  ].join('\n');
}

export function manPages(): Record<string, string> {
  return {
    'tcpcopy.1': manPage('tcpcopy', tcpcopyProgram()),
    'intercept.1': manPage('intercept', interceptProgram()),
  };
}
