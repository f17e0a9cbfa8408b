// The trader's page of Sigma: a tiny static + config server on 127.0.0.1 (Node http, no framework).
//   GET  /                   web/index.html (and the other files of web/)
//   GET  /vendor/ethers.js   ethers' browser ESM build from node_modules (no CDN)
//   GET  /deployment.json    the deployment file (re-read on every request, so a redeploy shows up)
//   GET  /config.json        { rpcUrl: "/rpc", chainId, local, devAccounts } — dev keys only on chain 31337
//   POST /rpc                JSON-RPC proxied to the node (same origin: no CORS needed)
//
// Standalone: npx ts-node --transpile-only scripts/serve.ts [--port 8080] [--rpc http://127.0.0.1:8545]
//             [--deployment deployments/localhost.json]
// scripts/devnet.ts starts it in-process.
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { HDNodeWallet } from "ethers";

export const DEV_MNEMONIC = "test test test test test test test test test test test junk";
const ROOT = path.resolve(__dirname, "..");
const WEB = path.join(ROOT, "web");
const ETHERS_ESM = path.join(ROOT, "node_modules", "ethers", "dist", "ethers.min.js");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

export interface ServeOptions {
  /** 0 picks a free port. */
  port?: number;
  /** Upstream JSON-RPC URL of the node. */
  rpcUrl: string;
  /** Path of the deployment JSON file. */
  deploymentFile: string;
  /** Dev accounts (index, address, private key) offered when the chain is local; default: hardhat's 0..19. */
  devAccountIndexes?: number[];
  /** Labels of special dev accounts (e.g. deployer, keeper). */
  devAccountNotes?: Record<number, string>;
}

export interface Served {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The hardhat node's well-known accounts of "test test … junk" (local use only). */
export function devAccounts(indexes: number[]): { index: number; address: string; privateKey: string }[] {
  const root = HDNodeWallet.fromPhrase(DEV_MNEMONIC, undefined, "m/44'/60'/0'/0");
  return indexes.map((i) => {
    const w = root.deriveChild(i);
    return { index: i, address: w.address, privateKey: w.privateKey };
  });
}

function send(res: http.ServerResponse, code: number, body: string | Buffer, type = "text/plain; charset=utf-8") {
  res.writeHead(code, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff" });
  res.end(body);
}

function readBody(req: http.IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        reject(new Error("body too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function proxyRpc(upstream: string, body: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(upstream);
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: u.pathname + u.search, method: "POST", headers: { "content-type": "application/json", "content-length": body.length } },
      (r) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => resolve({ status: r.statusCode ?? 502, body: Buffer.concat(chunks) }));
        r.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error("upstream timeout")));
    req.end(body);
  });
}

export async function startServer(opts: ServeOptions): Promise<Served> {
  const indexes = opts.devAccountIndexes ?? Array.from({ length: 20 }, (_, i) => i);
  let devCache: ReturnType<typeof devAccounts> | undefined;

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const p = decodeURIComponent(url.pathname);
      if (p === "/rpc") {
        if (req.method !== "POST") return send(res, 405, "POST only");
        const body = await readBody(req);
        try {
          const r = await proxyRpc(opts.rpcUrl, body);
          return send(res, r.status, r.body, "application/json");
        } catch (e) {
          return send(res, 502, JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32603, message: `node unreachable: ${(e as Error).message}` } }), "application/json");
        }
      }
      if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed");
      if (p === "/deployment.json") {
        if (!fs.existsSync(opts.deploymentFile)) return send(res, 404, JSON.stringify({ error: "no deployment yet" }), TYPES[".json"]);
        return send(res, 200, fs.readFileSync(opts.deploymentFile), TYPES[".json"]);
      }
      if (p === "/config.json") {
        let chainId = 0;
        try {
          chainId = JSON.parse(fs.readFileSync(opts.deploymentFile, "utf8")).chainId;
        } catch {
          /* no deployment yet */
        }
        const local = chainId === 31337;
        if (local && !devCache) devCache = devAccounts(indexes);
        const devs = local ? devCache!.map((a) => ({ ...a, note: opts.devAccountNotes?.[a.index] })) : [];
        return send(res, 200, JSON.stringify({ rpcUrl: "/rpc", chainId, local, devAccounts: devs }), TYPES[".json"]);
      }
      if (p === "/vendor/ethers.js") return send(res, 200, fs.readFileSync(ETHERS_ESM), TYPES[".js"]);
      const rel = p === "/" ? "index.html" : p.replace(/^\/+/, "");
      const file = path.resolve(WEB, rel);
      if (!file.startsWith(WEB + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return send(res, 404, "not found");
      return send(res, 200, fs.readFileSync(file), TYPES[path.extname(file)] ?? "application/octet-stream");
    } catch (e) {
      if (!res.headersSent) send(res, 500, String((e as Error).message));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const port = Number(arg(argv, "--port") ?? process.env.SIGMA_WEB_PORT ?? 8080);
  const rpcUrl = arg(argv, "--rpc") ?? process.env.SIGMA_RPC_URL ?? "http://127.0.0.1:8545";
  const deploymentFile = path.resolve(arg(argv, "--deployment") ?? path.join(ROOT, "deployments", "localhost.json"));
  startServer({ port, rpcUrl, deploymentFile })
    .then((s) => {
      console.log(`Sigma page: ${s.url}  (RPC ${rpcUrl}, deployment ${path.relative(process.cwd(), deploymentFile)})`);
      const stop = () => s.close().then(() => process.exit(0));
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
