import { ErrorFragment, Interface, isHexString } from "ethers";
import type { InterfaceAbi } from "ethers";

/** What a failed simulation or a reverted transaction means for the keeper. */
export type Classification =
  /** Another keeper (or the trader) got there first: a normal outcome, logged at info. */
  | "raced"
  /** Not yet possible (order not ready/expired yet, oracle stale, liquidations paused): try again later. */
  | "wait"
  /** The order expired: cancel it instead of executing it. */
  | "expired"
  /** A revert the keeper did not expect: logged as an error. */
  | "failed";

export interface DecodedRevert {
  name: string | null;
  args: unknown[];
  data: string | null;
  message: string;
}

/** Errors that say another actor already did the work. */
export const RACE_ERRORS = new Set([
  "ClearingHouseOrderNotFound", // executed or cancelled by someone else
  "ClearingHouseAccountHealthy", // liquidated by someone else (or topped up)
  "ClearingHouseCannotFlag", // margin call already flagged by someone else (or no longer callable)
]);

/** Errors that mean "not now". */
export const WAIT_ERRORS = new Set([
  "ClearingHouseOrderNotReady",
  "ClearingHouseAwaitingPriceRound", // no Chainlink round since the order's commit yet
  "ClearingHouseOrderNotTriggered", // a conditional order whose trigger is not met
  "ClearingHouseOrderNotExpired",
  "ClearingHouseLiquidationsPaused",
  "ClearingHouseLiquidationRateLimited", // the market's liquidation allowance for this window is used up
  "OracleStale",
  "OracleInvalidAnswer",
  "OracleSequencerDown",
  "OracleSequencerGracePeriod",
]);

/** Builds one interface holding the custom errors of several ABIs, to decode any protocol revert. */
export function errorInterface(...abis: InterfaceAbi[]): Interface {
  const seen = new Map<string, ErrorFragment>();
  for (const abi of abis) {
    for (const f of new Interface(abi).fragments) {
      if (f.type === "error") {
        const ef = f as ErrorFragment;
        if (!seen.has(ef.selector)) seen.set(ef.selector, ef);
      }
    }
  }
  return new Interface([...seen.values()]);
}

/** Finds revert data in an ethers / JSON-RPC error, however deeply the node and ethers wrapped it. */
export function extractRevertData(e: unknown): string | null {
  const seen = new Set<unknown>();
  const visit = (x: unknown, depth: number): string | null => {
    if (x === null || typeof x !== "object" || seen.has(x) || depth > 6) return null;
    seen.add(x);
    const o = x as Record<string, unknown>;
    const d = o.data;
    if (typeof d === "string" && isHexString(d) && d.length >= 10) return d;
    if (d && typeof d === "object") {
      const inner = (d as Record<string, unknown>).data;
      if (typeof inner === "string" && isHexString(inner) && inner.length >= 10) return inner;
    }
    for (const k of ["error", "info", "cause", "revert", "receipt"]) {
      const r = visit(o[k], depth + 1);
      if (r) return r;
    }
    return null;
  };
  return visit(e, 0);
}

/** Decodes the custom error in a failure, if any. */
export function decodeRevert(e: unknown, iface: Interface): DecodedRevert {
  const err = e as { shortMessage?: string; message?: string; revert?: { name?: string; args?: unknown[] } };
  const message = (err?.shortMessage ?? err?.message ?? String(e)).split("\n")[0].slice(0, 300);
  if (err?.revert?.name) return { name: err.revert.name, args: [...(err.revert.args ?? [])], data: extractRevertData(e), message };
  const data = extractRevertData(e);
  if (data) {
    try {
      const parsed = iface.parseError(data);
      if (parsed) return { name: parsed.name, args: [...parsed.args], data, message };
    } catch {
      /* unknown selector */
    }
  }
  // Some nodes only put the error's name in the message, e.g. "reverted with custom error 'X(…)'".
  const m = /custom error '?([A-Za-z_][A-Za-z0-9_]*)\(/.exec(err?.message ?? "");
  return { name: m ? m[1] : null, args: [], data, message };
}

/** Whether an error is a revert (the node executed the call) rather than a transport or node failure. */
export function isRevert(e: unknown): boolean {
  const err = e as { code?: string; message?: string; error?: { code?: number; message?: string } };
  if (err?.code === "CALL_EXCEPTION") return true;
  if (extractRevertData(e)) return true;
  const msg = `${err?.message ?? ""} ${err?.error?.message ?? ""}`;
  return /revert|VM Exception|execution reverted/i.test(msg);
}

export function classifyRevert(name: string | null): Classification {
  if (name === null) return "failed";
  if (RACE_ERRORS.has(name)) return "raced";
  if (WAIT_ERRORS.has(name)) return "wait";
  if (name === "ClearingHouseOrderExpired") return "expired";
  return "failed";
}

/** Nonce problems: resynchronize the nonce from the node and retry. */
export function isNonceError(e: unknown): boolean {
  const err = e as { code?: string; message?: string; error?: { message?: string } };
  if (err?.code === "NONCE_EXPIRED" || err?.code === "REPLACEMENT_UNDERPRICED") return true;
  const msg = `${err?.message ?? ""} ${err?.error?.message ?? ""}`.toLowerCase();
  return /nonce too low|nonce too high|invalid nonce|nonce has already been used|replacement transaction underpriced|already known|known transaction|nonce.*(lower|higher) than/.test(
    msg,
  );
}

/** The signed transaction is already in the node's pool (a resend after a lost answer). */
export function isAlreadyKnown(e: unknown): boolean {
  const err = e as { message?: string; error?: { message?: string } };
  const msg = `${err?.message ?? ""} ${err?.error?.message ?? ""}`.toLowerCase();
  return /already known|known transaction|already imported|transaction already exists/.test(msg);
}
