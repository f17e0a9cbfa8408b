/**
 * Minimal JSON-RPC client for bulk setup: batched requests over one keep-alive HTTP agent.
 */
import * as http from "http";

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
let nextId = 1;

export interface RpcReq {
  method: string;
  params: unknown[];
}

function post(url: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json" } }, (r) => {
      const chunks: Buffer[] = [];
      r.on("data", (c) => chunks.push(c));
      r.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    });
    req.on("error", reject);
    req.end(body);
  });
}

export async function call(url: string, method: string, params: unknown[] = []): Promise<any> {
  const res = JSON.parse(await post(url, JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params })));
  if (res.error) throw new Error(`${method}: ${res.error.message}`);
  return res.result;
}

/** Sends requests in JSON-RPC batches of `size`; throws on the first error. Results in input order. */
export async function batch(url: string, reqs: RpcReq[], size = 500, parallel = 2): Promise<any[]> {
  const out: any[] = new Array(reqs.length);
  const parts: number[] = [];
  for (let i = 0; i < reqs.length; i += size) parts.push(i);
  let next = 0;
  const worker = async () => {
    while (next < parts.length) {
      const start = parts[next++];
      const slice = reqs.slice(start, start + size);
      const base = nextId;
      nextId += slice.length;
      const body = JSON.stringify(slice.map((r, k) => ({ jsonrpc: "2.0", id: base + k, method: r.method, params: r.params })));
      const res = JSON.parse(await post(url, body)) as any[];
      for (const x of res) {
        if (x.error) throw new Error(`${slice[x.id - base].method}: ${x.error.message}${x.error.data ? ` ${JSON.stringify(x.error.data)}` : ""}`);
        out[start + (x.id - base)] = x.result;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, parts.length) }, worker));
  return out;
}

export function hex(n: bigint | number): string {
  return "0x" + BigInt(n).toString(16);
}

export function destroyAgent(): void {
  agent.destroy();
}
