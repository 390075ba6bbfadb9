// bench/send-flow.ts keeps measuring what it says: every message through the real send flow is sent
// (the bench throws otherwise), and the allocation profile finds the flow's own functions.
import t from 'tap';
import { runSendFlowBench } from '../../bench/send-flow.js';

t.test('the send-flow bench sends every message and profiles the flow', async (t) => {
  const lines: string[] = [];
  const f = await runSendFlowBench({ quick: true, top: true, messages: 2000, log: (l) => lines.push(l) });
  t.ok(Number.isFinite(f.send_flow_us) && f.send_flow_us > 0, `µs per message: ${f.send_flow_us}`);
  // a message parses, normalizes, maps and serializes a few KB of JSON: well above 2 KB, well below 100
  t.ok(f.send_flow_kb > 2 && f.send_flow_kb < 100, `KB per message: ${f.send_flow_kb}`);
  t.match(lines[0], /µs and [\d.]+ KB allocated per message/);
  t.ok(lines.some((l) => /handleSend\s+engine\/host\/send-flow\.ts/.test(l)), 'the top list names the send flow itself');
  // the trace's part: both variants ran (the bench throws if the trace dropped an event) and are compared
  t.ok(f.send_flow_traced_us > 0, `µs per message traced: ${f.send_flow_traced_us}`);
  t.ok(f.send_flow_trace_ratio > 0 && f.send_flow_trace_ratio < 2, `trace on/off: ${f.send_flow_trace_ratio}`);
  t.ok(f.send_flow_trace_cpu_ratio > 0 && f.send_flow_trace_cpu_ratio < 2, `trace on/off, CPU: ${f.send_flow_trace_cpu_ratio}`);
  // a send event keeps headers, answer and ids: it allocates something, and far less than the flow
  t.ok(f.send_flow_trace_kb > 0 && f.send_flow_trace_kb < f.send_flow_kb, `KB the trace adds: ${f.send_flow_trace_kb}`);
  t.match(lines.at(-1), /^message trace on \(SQLite thread\): [\d.]+ µs per message, [\d.]+ of the messages\/s without it/);
});
