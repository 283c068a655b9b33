// Minimal typing of the pidusage API this project uses.
declare module 'pidusage' {
  interface Status {
    cpu: number;
    memory: number;
    ppid: number;
    pid: number;
    ctime: number;
    elapsed: number;
    timestamp: number;
  }
  function pidusage(pid: number | string, cb: (err: Error | null, stats: Status) => void): void;
  function pidusage(pid: number | string): Promise<Status>;
  namespace pidusage {
    function clear(): void;
  }
  export = pidusage;
}
