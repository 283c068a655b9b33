// Manual smoke run (not a test): node dist/test/e2e/smoke.js
import { Testbed, TARGET_IP, ASSISTANT_IP } from './testbed';
import { startDaemon } from './daemons';
async function main() {
  const tb = await Testbed.create({ clientAddrs: 1 });
  try {
    const online = await tb.startHttpServer('online', 80);
    const target = await tb.startHttpServer('target', 8080);
    const icpt = await startDaemon(tb, 'assistant', 'intercept', ['-i', tb.dev('assistant'), '-F', 'tcp and src port 8080']);
    const tc = await startDaemon(tb, 'online', 'tcpcopy', ['-x', `80-${TARGET_IP}:8080`, '-s', ASSISTANT_IP]);
    const r1 = await tb.runLoad({ requests: Number(process.env.N ?? 50), concurrency: 5, keepalive: process.env.KA === '1', rate: 200 });
    console.log('load', JSON.stringify(r1));
    await new Promise((r) => setTimeout(r, 3000));
    const os = await online.stats(); const ts = await target.stats();
    console.log('online', os.requests, os.requestBytes, 'target', ts.requests, ts.requestBytes);
    console.log('tcpcopy', JSON.stringify(tc.lastStats()));
    console.log('intercept', JSON.stringify(icpt.lastStats()));
    await tc.stop(); await icpt.stop();
  } finally {
    await tb.destroy();
  }
}
void main();
