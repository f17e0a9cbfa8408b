import * as http from "http";
import * as https from "https";
import { JsonRpcProvider, Network } from "ethers";
import type { JsonRpcPayload, JsonRpcResult } from "ethers";
import { backoffDelay, sleep } from "./backoff";
import type { Logger } from "./log";
import { redactUrl } from "./config";

export interface FailoverOptions {
  /** Timeout of one HTTP request, ms. */
  timeoutMs: number;
  /** Attempts per request across all endpoints before the request fails (default 2 rounds over the list, min 3). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  log?: Logger;
  onFailover?: (from: string, to: string, error: string) => void;
  onError?: (url: string, error: string) => void;
}

/** Thrown when every endpoint failed for one request. */
export class RpcUnavailableError extends Error {
  constructor(message: string, public readonly cause?: unknown) {
    super(message);
    this.name = "RpcUnavailableError";
  }
}

/**
 * An ethers JsonRpcProvider over several HTTP endpoints. A request that fails at the transport level
 * (connection refused or reset, timeout, HTTP 5xx/429, unparseable body) is retried on the next endpoint
 * after an exponential backoff with jitter; JSON-RPC errors (reverts, nonce errors) are answers, not
 * failures, and are returned as they are. The provider stays on the endpoint that last worked.
 *
 * Resending `eth_sendRawTransaction` after a transport failure is safe: the same signed bytes have the
 * same hash, and the sender treats "already known" / "nonce too low" for a hash it can find as sent.
 */
export class FailoverProvider extends JsonRpcProvider {
  readonly urls: string[];
  private current = 0;
  private closed = false;
  private readonly opts: Required<Omit<FailoverOptions, "log" | "onFailover" | "onError">> & FailoverOptions;
  private readonly abort = new AbortController();

  constructor(urls: string[], chainId: number, opts: FailoverOptions) {
    if (urls.length === 0) throw new Error("FailoverProvider: no URL");
    const network = Network.from(chainId);
    // batchStallTime 0: calls made in the same tick still share one HTTP request, but a lone call does not wait
    // 10 ms for company (an iteration makes a dozen calls in sequence).
    super(urls[0], network, { staticNetwork: network, batchMaxCount: 50, batchStallTime: 0, cacheTimeout: -1 });
    this.urls = urls;
    this.opts = {
      maxAttempts: Math.max(3, urls.length * 2),
      baseDelayMs: 200,
      maxDelayMs: 5_000,
      ...opts,
    };
  }

  /** The endpoint requests go to now. */
  get currentUrl(): string {
    return this.urls[this.current];
  }

  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.opts.maxAttempts; attempt++) {
      if (this.closed) throw new RpcUnavailableError("provider closed");
      const url = this.urls[this.current];
      try {
        return await this.post(url, payload);
      } catch (e) {
        lastError = e;
        const msg = shortError(e);
        this.opts.onError?.(url, msg);
        if (this.urls.length > 1) {
          const prev = this.current;
          this.current = (this.current + 1) % this.urls.length;
          this.opts.onFailover?.(this.urls[prev], this.urls[this.current], msg);
          this.opts.log?.warn(
            { from: redactUrl(this.urls[prev]), to: redactUrl(this.urls[this.current]), err: msg, attempt },
            "rpc endpoint failed; failing over",
          );
        } else {
          this.opts.log?.warn({ url: redactUrl(url), err: msg, attempt }, "rpc endpoint failed; retrying");
        }
        // Go round the other endpoints quickly; back off once every endpoint has failed this round.
        const round = Math.floor(attempt / this.urls.length);
        if ((attempt + 1) % this.urls.length === 0 && attempt + 1 < this.opts.maxAttempts) {
          await sleep(backoffDelay(round, this.opts.baseDelayMs, this.opts.maxDelayMs), this.abort.signal);
        }
      }
    }
    throw new RpcUnavailableError(`all RPC endpoints failed: ${shortError(lastError)}`, lastError);
  }

  /**
   * One HTTP POST with Node's http(s) client. Not ethers' FetchRequest: it grows the response body by
   * copying it on every chunk (quadratic: gigabytes allocated for a 40 MB eth_getLogs answer) and decodes
   * UTF-8 through an array of code points.
   */
  private post(url: string, payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const body = JSON.stringify(payload);
    const u = new URL(url);
    const client = u.protocol === "https:" ? https : http;
    return new Promise<JsonRpcResult[]>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, value?: JsonRpcResult[]) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.active.delete(onAbort);
        if (err) reject(err);
        else resolve(value!);
      };
      const req = client.request(
        u,
        { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => finish(e));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) return finish(new Error(`HTTP ${status} ${res.statusMessage ?? ""}`.trim()));
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              return finish(new Error("RPC answered a body that is not JSON"));
            }
            if (parsed === null || typeof parsed !== "object") return finish(new Error("RPC answered a non-JSON-RPC body"));
            finish(null, Array.isArray(parsed) ? (parsed as JsonRpcResult[]) : [parsed as JsonRpcResult]);
          });
        },
      );
      const timer = setTimeout(() => {
        const e = Object.assign(new Error(`timeout after ${this.opts.timeoutMs} ms`), { code: "TIMEOUT" });
        req.destroy(e);
        finish(e);
      }, this.opts.timeoutMs);
      const onAbort = () => {
        req.destroy();
        finish(new RpcUnavailableError("provider closed"));
      };
      this.active.add(onAbort);
      req.on("error", (e) => finish(e));
      req.end(body);
    });
  }

  /** Aborts of the requests in progress (destroy() ends them). */
  private readonly active = new Set<() => void>();

  override destroy(): void {
    this.closed = true;
    for (const stop of [...this.active]) stop();
    this.abort.abort();
    super.destroy();
  }
}

/** A one-line description of an error without its (possibly huge) request payload. */
export function shortError(e: unknown): string {
  if (e === null || e === undefined) return String(e);
  const err = e as { code?: string; shortMessage?: string; message?: string; cause?: { code?: string } };
  const code = err.code ?? err.cause?.code;
  const msg = err.shortMessage ?? err.message ?? String(e);
  return `${code ? `${code}: ` : ""}${msg.split("\n")[0].slice(0, 300)}`;
}
