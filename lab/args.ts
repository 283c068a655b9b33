import type { Command, CommanderError } from 'commander';

/**
 * Parses `argv` (user arguments only) with a commander program for the lab's tools (demo,
 * bench, fixtures): help and version exit 0; any other error goes to `fail` with commander's
 * message (without its "error: " prefix), which prints one line and exits.
 */
export function parseArgs(cmd: Command, argv: readonly string[], fail: (message: string) => never): void {
  cmd.exitOverride();
  try {
    cmd.parse(argv as string[], { from: 'user' });
  } catch (e) {
    const err = e as CommanderError;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
    fail(err.message.replace(/^error: /, ''));
  }
}
