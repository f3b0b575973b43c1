// Reads one JSON string per line on stdin, parses each with Node's WHATWG URL, and writes one
// JSON object per line: {"ok": true, "href", "hostname", "protocol", "username", "password"} or
// {"ok": false}. One process answers a whole batch.
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let answer;
  try {
    const url = new URL(JSON.parse(line));
    answer = {
      ok: true,
      href: url.href,
      hostname: url.hostname,
      protocol: url.protocol,
      username: url.username,
      password: url.password,
    };
  } catch {
    answer = { ok: false };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
